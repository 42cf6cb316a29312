/** A local HTTPS "CA" for AcmeConnection tests: listens on a free port, trusts its own test CA, closes everything. */
import { generateKeyPairSync } from 'node:crypto';
import type https from 'node:https';
import type { AddressInfo } from 'node:net';
import { systemClock } from '../../src/clock.js';
import { AcmeConnection } from '../../src/acme/connection.js';
import { TrustHandle } from '../../src/acme/trust.js';
import { DEFAULT_RETRY_POLICY } from '../../src/defaults.js';
import { silentLogger } from '../helpers/logging.js';

export interface ConnectionFixture {
  base: string;
  trust: TrustHandle;
  /** A connection with a fresh account key to `${base}/dir`. */
  connection(): AcmeConnection;
  close(): Promise<void>;
}

export async function listenForConnections(server: https.Server, caPem: string): Promise<ConnectionFixture> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const base = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const trust = new TrustHandle([caPem]);
  trust.addOrigin(`${base}/dir`);
  return {
    base,
    trust,
    connection: () =>
      new AcmeConnection({
        directoryUrl: `${base}/dir`,
        accountKeyPem: generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
        accountUrl: `${base}/acct/1`,
        trust,
        logger: silentLogger(),
        clock: systemClock,
        retryPolicy: DEFAULT_RETRY_POLICY,
      }),
    close: async () => {
      await trust.close();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}
