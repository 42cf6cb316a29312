/**
 * The parts of acme-client certkeeper uses, required on first use from the files its index loads them
 * from. The index also loads its legacy node-forge API (~50 ms of compiling at the first order), which
 * certkeeper never calls. Same files, same module cache: one Client class and one shared axios
 * instance per process, as through the index. acme-client is pinned to ~5.4.0, whose package.json has
 * no "exports" map, so these paths can be required.
 */
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import type AcmeClient from 'acme-client';
import { lazyObject } from '../lazy.js';

type Parts = Pick<typeof AcmeClient, 'Client' | 'crypto' | 'axios' | 'setLogger'>;

export const acme: Parts = lazyObject(() => {
  // As in lazy.ts: import.meta.url is undefined when an application bundles certkeeper into CommonJS.
  const require = createRequire((import.meta.url as string | undefined) ?? pathToFileURL(__filename).href);
  return {
    Client: require('acme-client/src/client.js') as Parts['Client'],
    crypto: require('acme-client/src/crypto/index.js') as Parts['crypto'],
    axios: require('acme-client/src/axios.js') as Parts['axios'],
    setLogger: (require('acme-client/src/logger.js') as Pick<Parts, 'setLogger'>).setLogger,
  };
});
