/**
 * A large manageSync only lists its names; the warm-up reads their sidecars.
 * Such a name's CA renewal window (ARI) must count as for a served one (a CA's
 * revocation drill reaches every certificate, not only those a handshake
 * loaded): the refresh asks about the PEM kept in storage.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { RenewalInfo } from '../../src/acme/ari.js';
import type { Issuer } from '../../src/issuers/types.js';
import { CertKeeper, DEFAULT_EAGER_LOAD_LIMIT } from '../../src/manager/keeper.js';
import { buildCertificateMeta, saveCertificateSet } from '../../src/storage/certificates.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import { silentLogger } from '../helpers/logging.js';
import { createTestCa, createTestLeaf } from '../helpers/tls-certs.js';

const HOUR = 3_600_000;

test('names only listed at start-up get their ARI window asked for, with the stored certificate, without any handshake', async () => {
  const storage = new MemoryStorage();
  const asked: string[] = [];
  const issuer: Issuer = {
    key: 'ari-stub',
    issue: async () => assert.fail('nothing is due: no order'),
    renewalInfo: async (certificatePem: string): Promise<RenewalInfo> => {
      asked.push(certificatePem);
      const now = Date.now();
      return { windowStart: now + 30 * 24 * HOUR, windowEnd: now + 31 * 24 * HOUR, retryAfter: now + 6 * HOUR, retryAfterMs: 6 * HOUR };
    },
  };
  const ca = await createTestCa();
  const leaf = await createTestLeaf(ca, { names: ['*.listed.test'] });
  const names = Array.from({ length: DEFAULT_EAGER_LOAD_LIMIT + 20 }, (_, i) => `n${i}.listed.test`);
  for (const name of names) {
    await saveCertificateSet(storage, { certPem: leaf.chainPem, keyPem: leaf.keyPem, meta: buildCertificateMeta({ certPem: leaf.chainPem, keyPem: leaf.keyPem, issuerKey: issuer.key, names: [name] }) });
  }
  const keeper = new CertKeeper({ storage, issuers: [issuer], logger: silentLogger(), challenges: { http01: false } });
  try {
    await keeper.manageSync(names);
    for (let i = 0; i < 600 && asked.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 25));
    assert.ok(asked.length > 0, 'the CA was asked about listed names');
    for (const pem of asked) assert.equal(pem, leaf.chainPem, 'about the stored certificate');
  } finally {
    await keeper.close();
  }
});
