/**
 * manageSync with more names than DEFAULT_EAGER_LOAD_LIMIT: one storage listing
 * decides what is stored, sidecars are read in the background, nothing stored
 * is ordered again, and a stored name is served on its first handshake.
 */
import assert from 'node:assert/strict';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { describe, test } from 'node:test';
import { CertKeeper, DEFAULT_EAGER_LOAD_LIMIT } from '../../src/manager/keeper.js';
import { InternalIssuer } from '../../src/issuers/internal.js';
import type { IssueRequest, Issuer } from '../../src/issuers/types.js';
import { buildCertificateMeta, saveCertificateSet } from '../../src/storage/certificates.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import { silentLogger } from '../helpers/logging.js';
import { handshake } from '../helpers/tls-client.js';
import { createTestCa, createTestLeaf } from '../helpers/tls-certs.js';

describe('manageSync of many stored names', () => {
  test('serves stored names without ordering them, schedules them in the background, orders only the missing one', async () => {
    const storage = new MemoryStorage();
    const internal = new InternalIssuer({ storage, name: 'bulk' });
    const issued: string[] = [];
    const issuer: Issuer = {
      key: internal.key,
      issue: (request: IssueRequest) => {
        issued.push(request.identifiers[0]!.value);
        return internal.issue(request);
      },
    };
    // One wildcard certificate filed under every name keeps the fixture fast; each name gets its own set and sidecar.
    const ca = await createTestCa();
    const leaf = await createTestLeaf(ca, { names: ['*.bulk.test'] });
    const count = DEFAULT_EAGER_LOAD_LIMIT + 50;
    const names = Array.from({ length: count }, (_, i) => `n${i}.bulk.test`);
    for (const name of names) {
      const meta = buildCertificateMeta({ certPem: leaf.chainPem, keyPem: leaf.keyPem, issuerKey: issuer.key, names: [name] });
      await saveCertificateSet(storage, { certPem: leaf.chainPem, keyPem: leaf.keyPem, meta });
    }
    const keeper = new CertKeeper({ storage, issuers: [issuer], logger: silentLogger(), challenges: { http01: false } });
    const server = https.createServer(keeper.tlsOptions(), (_req, res) => res.end('ok'));
    try {
      await keeper.manageSync([...names, 'missing.bulk.test']);
      assert.deepEqual(issued, ['missing.bulk.test'], 'only the name with nothing stored was ordered');
      assert.equal(keeper.status('n7.bulk.test').issuer, issuer.key);

      const port = await new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
      const served = await handshake(port, 'n1000.bulk.test', ca.certPem);
      assert.ok(served.authorized, served.authorizationError);
      assert.equal(served.serialNumber, leaf.serialNumber, 'the stored set was loaded on the first handshake');

      // Background warm-up reads every sidecar and schedules its renewal.
      for (let i = 0; i < 200 && names.some((n) => keeper.status(n).nextRenewalAt === undefined); i++) {
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
      for (const name of names) assert.ok(keeper.status(name).nextRenewalAt, `${name} has a renewal time`);
      assert.deepEqual(issued, ['missing.bulk.test'], 'warm-up ordered nothing for valid stored certificates');
    } finally {
      server.close();
      await keeper.close();
      await internal.close();
    }
  });
});
