/**
 * A stored name served by a handshake before the background warm-up reaches
 * it still gets its renewal scheduled (serving a stored set schedules nothing
 * by itself; the warm-up used to skip a record that already had a certificate).
 */
import assert from 'node:assert/strict';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { CertKeeper, DEFAULT_EAGER_LOAD_LIMIT } from '../../src/manager/keeper.js';
import { InternalIssuer } from '../../src/issuers/internal.js';
import { buildCertificateMeta, saveCertificateSet } from '../../src/storage/certificates.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import { silentLogger } from '../helpers/logging.js';
import { handshake } from '../helpers/tls-client.js';
import { createTestCa, createTestLeaf } from '../helpers/tls-certs.js';

/** Holds reads of the first names' sidecars until released: the warm-up's workers wait there, nothing else does. */
class GatedStorage extends MemoryStorage {
  readonly held = new Set<string>();
  waiting = 0;
  #open!: () => void;
  readonly #gate = new Promise<void>((resolve) => (this.#open = resolve));
  release(): void {
    this.#open();
  }
  override async load(key: string): Promise<Buffer> {
    if (this.held.has(key)) {
      this.waiting++;
      await this.#gate;
    }
    return super.load(key);
  }
}

test('a name adopted by a handshake before the warm-up reaches it is scheduled for renewal', async () => {
  const storage = new GatedStorage();
  const issuer = new InternalIssuer({ storage, name: 'bulk' });
  const ca = await createTestCa();
  const leaf = await createTestLeaf(ca, { names: ['*.bulk.test'] });
  const names = Array.from({ length: DEFAULT_EAGER_LOAD_LIMIT + 20 }, (_, i) => `n${i}.bulk.test`);
  for (const name of names) {
    const meta = buildCertificateMeta({ certPem: leaf.chainPem, keyPem: leaf.keyPem, issuerKey: issuer.key, names: [name] });
    await saveCertificateSet(storage, { certPem: leaf.chainPem, keyPem: leaf.keyPem, meta });
  }
  // The warm-up reads in list order, a few workers at once: holding the first 32 sidecars stops all of them.
  for (const name of names.slice(0, 32)) storage.held.add(`certificates/${issuer.key}/${name}/${name}.json`);
  const keeper = new CertKeeper({ storage, issuers: [issuer], logger: silentLogger(), challenges: { http01: false } });
  const server = https.createServer(keeper.tlsOptions(), (_req, res) => res.end('ok'));
  try {
    await keeper.manageSync(names);
    const port = await new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
    const late = 'n1010.bulk.test';
    const served = await handshake(port, late, ca.certPem);
    assert.equal(served.serialNumber, leaf.serialNumber, 'served from storage on its first handshake');
    assert.ok(storage.waiting > 0, 'the warm-up was held while the handshake adopted the set');
    assert.equal(keeper.status(late).nextRenewalAt, undefined, 'not scheduled yet: the warm-up has not reached it');
    storage.release();
    for (let i = 0; i < 400 && names.some((n) => keeper.status(n).nextRenewalAt === undefined); i++) {
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    assert.ok(keeper.status(late).nextRenewalAt, 'the name adopted by the handshake has a renewal time');
    for (const name of names) assert.ok(keeper.status(name).nextRenewalAt, `${name} has a renewal time`);
  } finally {
    server.close();
    await keeper.close();
    await issuer.close();
  }
});
