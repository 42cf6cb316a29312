/**
 * The one part of acme-client certkeeper still uses: its crypto helpers, for the TLS-ALPN-01
 * challenge certificate (alpn-certificate.ts). Required on first use from the file its index loads
 * them from; the index would also load its client, axios and legacy node-forge API. The order path
 * signs and sends on its own (jws.ts, http.ts). acme-client is pinned to ~5.4.0, whose package.json
 * has no "exports" map, so this path can be required.
 */
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import type AcmeClient from 'acme-client';
import { lazyObject } from '../lazy.js';

type Parts = Pick<typeof AcmeClient, 'crypto'>;

export const acme: Parts = lazyObject(() => {
  // As in lazy.ts: import.meta.url is undefined when an application bundles certkeeper into CommonJS.
  const require = createRequire((import.meta.url as string | undefined) ?? pathToFileURL(__filename).href);
  return { crypto: require('acme-client/src/crypto/index.js') as Parts['crypto'] };
});
