import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { before, describe, it } from 'node:test';
import {
  type CertificateSet,
  buildCertificateMeta,
  listCertificateNames,
  loadCertificateSet,
  saveCertificateSet,
  sha256,
  updateCertificateMeta,
} from '../../src/storage/certificates.js';
import { certificateKeys } from '../../src/storage/layout.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import type { Storage } from '../../src/storage/types.js';
import { type TestCertificate, selfSignedCertificate } from '../helpers/certs.js';

const ISSUER = 'ca.test-directory';
const NAME = 'www.example.test';
const KEYS = certificateKeys(ISSUER, NAME);

let first: TestCertificate;
let second: TestCertificate;

function setOf(pair: TestCertificate, names = [NAME, 'example.test']): CertificateSet {
  return { ...pair, meta: buildCertificateMeta({ ...pair, issuerKey: ISSUER, names }) };
}

/** A storage whose store() starts failing after `allowed` successful calls: a crash mid-save. */
function crashingAfter(inner: Storage, allowed: number): Storage {
  let left = allowed;
  return new Proxy(inner, {
    get(target, prop, receiver) {
      if (prop === 'store' || prop === 'delete') {
        return async (key: string, value?: Uint8Array) => {
          if (left-- <= 0) throw new Error('simulated crash');
          return prop === 'store' ? target.store(key, value!) : target.delete(key);
        };
      }
      const v = Reflect.get(target, prop, receiver) as unknown;
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
}

/** Counts calls per method, to prove listing reads no files. */
function counting(inner: Storage): { storage: Storage; calls: Record<string, number> } {
  const calls: Record<string, number> = {};
  const storage = new Proxy(inner, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver) as unknown;
      if (typeof v !== 'function') return v;
      return (...args: unknown[]) => {
        calls[String(prop)] = (calls[String(prop)] ?? 0) + 1;
        return (v as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return { storage, calls };
}

async function assertInvalid(promise: Promise<unknown>, pattern: RegExp): Promise<void> {
  await assert.rejects(promise, (err: Error & { code?: string }) => {
    assert.equal(err.code, 'ERR_CERTIFICATE_INVALID', err.message);
    assert.match(err.message, pattern);
    assert.doesNotMatch(err.message, /BEGIN|PRIVATE KEY|MII/, 'no PEM content in the message');
    return true;
  });
}

describe('certificate sets', () => {
  before(async () => {
    first = await selfSignedCertificate([NAME, 'example.test']);
    second = await selfSignedCertificate([NAME, 'example.test']);
  });

  describe('buildCertificateMeta', () => {
    it('reads names, dates, serial and key type from the certificate and fingerprints both PEMs', () => {
      const meta = buildCertificateMeta({ ...first, issuerKey: ISSUER, issuerData: { order: 'u' } });
      const cert = new X509Certificate(first.certPem);
      assert.equal(meta.v, 1);
      assert.deepEqual(meta.names, [NAME, 'example.test']);
      assert.equal(meta.issuerKey, ISSUER);
      assert.equal(meta.notBefore, new Date(cert.validFrom).toISOString());
      assert.equal(meta.notAfter, new Date(cert.validTo).toISOString());
      assert.equal(meta.serialNumber, cert.serialNumber);
      assert.equal(meta.keyType, 'ecdsa-p256');
      assert.deepEqual(meta.sha256, { cert: sha256(first.certPem), key: sha256(first.keyPem) });
      assert.deepEqual(meta.issuerData, { order: 'u' });
      assert.deepEqual(meta.renewal, { failures: 0 });
    });

    it('refuses a key that does not belong to the certificate', () => {
      assert.throws(() => buildCertificateMeta({ certPem: first.certPem, keyPem: second.keyPem, issuerKey: ISSUER }), {
        code: 'ERR_CERTIFICATE_INVALID',
      });
    });
  });

  describe('save and load', () => {
    it('stores the three parts under the first name, leaves no .pending, and loads them back', async () => {
      const storage = new MemoryStorage();
      await saveCertificateSet(storage, setOf(first));
      assert.equal((await storage.load(KEYS.cert)).toString(), first.certPem);
      assert.equal((await storage.load(KEYS.key)).toString(), first.keyPem);
      assert.equal(await storage.exists(KEYS.pending), false);
      const loaded = await loadCertificateSet(storage, ISSUER, NAME);
      assert.equal(loaded.certPem, first.certPem);
      assert.equal(loaded.keyPem, first.keyPem);
    });

    it('recomputes fingerprints on save, whatever the caller passed', async () => {
      const storage = new MemoryStorage();
      const set = setOf(first);
      set.meta.sha256 = { cert: 'bogus', key: 'bogus' };
      const saved = await saveCertificateSet(storage, set);
      assert.equal(saved.meta.sha256.cert, sha256(first.certPem));
      assert.equal(set.meta.sha256.cert, 'bogus', "the caller's object is not mutated");
      await loadCertificateSet(storage, ISSUER, NAME);
    });

    it('writes nothing when the key does not match the certificate', async () => {
      const storage = new MemoryStorage();
      const set = setOf(first);
      await assertInvalid(saveCertificateSet(storage, { ...set, keyPem: second.keyPem }), /does not match/);
      assert.equal(await storage.exists(KEYS.prefix), false);
    });

    it('throws StorageNotFoundError when nothing is stored', async () => {
      await assert.rejects(loadCertificateSet(new MemoryStorage(), ISSUER, NAME), { code: 'ERR_STORAGE_NOT_FOUND' });
    });

    // A save makes 4 stores and a delete; crash after each of the first 4 steps.
    for (const [allowed, state] of [
      [1, 'only .pending written'],
      [2, '.pending and the new key written'],
      [3, '.pending, key and certificate written'],
      [4, 'all written but .pending not yet deleted'],
    ] as const) {
      it(`rolls an interrupted save forward (${state})`, async () => {
        const storage = new MemoryStorage();
        await saveCertificateSet(storage, setOf(first));
        await assert.rejects(saveCertificateSet(crashingAfter(storage, allowed), setOf(second)), /simulated crash/);
        assert.equal(await storage.exists(KEYS.pending), true);
        const loaded = await loadCertificateSet(storage, ISSUER, NAME);
        assert.equal(loaded.certPem, second.certPem);
        assert.equal(loaded.keyPem, second.keyPem);
        assert.equal(await storage.exists(KEYS.pending), false, 'rolled forward and cleaned up');
        assert.equal((await storage.load(KEYS.key)).toString(), second.keyPem);
        assert.equal((await storage.load(KEYS.cert)).toString(), second.certPem);
      });
    }

    it('still returns a pending set when rolling it forward fails (read-only storage)', async () => {
      const storage = new MemoryStorage();
      await saveCertificateSet(storage, setOf(first));
      await assert.rejects(saveCertificateSet(crashingAfter(storage, 1), setOf(second)), /simulated crash/);
      const loaded = await loadCertificateSet(crashingAfter(storage, 0), ISSUER, NAME);
      assert.equal(loaded.certPem, second.certPem);
      assert.equal(await storage.exists(KEYS.pending), true, 'left for the next attempt');
    });

    it('ignores an unreadable .pending and serves the complete parts', async () => {
      const storage = new MemoryStorage();
      await saveCertificateSet(storage, setOf(first));
      await storage.store(KEYS.pending, Buffer.from('{"v":1,"certPem":"trunc'));
      assert.equal((await loadCertificateSet(storage, ISSUER, NAME)).certPem, first.certPem);
    });
  });

  describe('damaged sets', () => {
    let storage: MemoryStorage;
    const fresh = async (): Promise<MemoryStorage> => {
      storage = new MemoryStorage();
      await saveCertificateSet(storage, setOf(first));
      return storage;
    };

    it('detects a certificate that does not match the sidecar (torn write or race)', async () => {
      await fresh();
      await storage.store(KEYS.cert, Buffer.from(second.certPem));
      await assertInvalid(loadCertificateSet(storage, ISSUER, NAME), /Certificate in certificates\/ca.test-directory\/www.example.test does not match its sidecar/);
    });

    it('detects a key that does not match the sidecar', async () => {
      await fresh();
      await storage.store(KEYS.key, Buffer.from(second.keyPem));
      await assertInvalid(loadCertificateSet(storage, ISSUER, NAME), /Private key in .* does not match its sidecar/);
    });

    it('detects a key that does not belong to the certificate even when the sidecar agrees', async () => {
      await fresh();
      await storage.store(KEYS.key, Buffer.from(second.keyPem));
      await updateSidecar(storage, (m) => ({ ...m, sha256: { cert: m.sha256.cert, key: sha256(second.keyPem) } }));
      await assertInvalid(loadCertificateSet(storage, ISSUER, NAME), /does not match its certificate/);
    });

    it('detects truncated and empty parts', async () => {
      await fresh();
      await storage.store(KEYS.cert, Buffer.from(first.certPem.slice(0, 100)));
      await assertInvalid(loadCertificateSet(storage, ISSUER, NAME), /does not match its sidecar/);
      await fresh();
      await storage.store(KEYS.key, Buffer.alloc(0));
      await assertInvalid(loadCertificateSet(storage, ISSUER, NAME), /\.key is empty/);
    });

    it('detects an unparseable certificate even when the sidecar agrees', async () => {
      await fresh();
      const garbage = '-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n';
      await storage.store(KEYS.cert, Buffer.from(garbage));
      await updateSidecar(storage, (m) => ({ ...m, sha256: { cert: sha256(garbage), key: m.sha256.key } }));
      await assertInvalid(loadCertificateSet(storage, ISSUER, NAME), /cannot be parsed/);
    });

    it('detects a missing part, an unparseable sidecar and a sidecar of the wrong shape', async () => {
      await fresh();
      await storage.delete(KEYS.meta);
      await assertInvalid(loadCertificateSet(storage, ISSUER, NAME), /\.json is missing/);
      await fresh();
      await storage.store(KEYS.meta, Buffer.from('{"v":1,'));
      await assertInvalid(loadCertificateSet(storage, ISSUER, NAME), /not valid JSON/);
      await fresh();
      await storage.store(KEYS.meta, Buffer.from('{"v":2}'));
      await assertInvalid(loadCertificateSet(storage, ISSUER, NAME), /unsupported version/);
      await fresh();
      await updateSidecar(storage, (m) => ({ ...m, names: [] }));
      await assertInvalid(loadCertificateSet(storage, ISSUER, NAME), /"names"/);
    });

    async function updateSidecar(s: Storage, change: (m: CertificateSet['meta']) => CertificateSet['meta']): Promise<void> {
      const meta = JSON.parse((await s.load(KEYS.meta)).toString()) as CertificateSet['meta'];
      await s.store(KEYS.meta, Buffer.from(JSON.stringify(change(meta))));
    }
  });

  describe('updateCertificateMeta', () => {
    it('rewrites only the sidecar, keeping fingerprints and certificate facts, and unknown fields', async () => {
      const storage = new MemoryStorage();
      const set = setOf(first);
      const saved = await saveCertificateSet(storage, { ...set, meta: { ...set.meta, futureField: { x: 1 } } });
      const updated = await updateCertificateMeta(storage, ISSUER, NAME, (m) => ({
        ...m,
        sha256: { cert: 'forged', key: 'forged' },
        notAfter: '2999-01-01T00:00:00.000Z',
        renewal: {
          failures: 3,
          nextAttemptAt: '2026-01-01T01:00:00.000Z',
          ari: { windowStart: 'a', windowEnd: 'b', selectedTime: 'c', retryAfter: 'd' },
        },
      }));
      assert.deepEqual(updated.sha256, saved.meta.sha256);
      assert.equal(updated.notAfter, saved.meta.notAfter);
      assert.equal(updated.renewal.failures, 3);
      assert.deepEqual(updated.futureField, { x: 1 });
      const loaded = await loadCertificateSet(storage, ISSUER, NAME);
      assert.deepEqual(loaded.meta, updated);
      assert.equal(loaded.certPem, first.certPem);
    });

    it('completes an interrupted save first, so the update lands on the new set', async () => {
      const storage = new MemoryStorage();
      await saveCertificateSet(storage, setOf(first));
      await assert.rejects(saveCertificateSet(crashingAfter(storage, 2), setOf(second)), /simulated crash/);
      const updated = await updateCertificateMeta(storage, ISSUER, NAME, (m) => ({ ...m, renewal: { failures: 1 } }));
      assert.equal(updated.sha256.cert, sha256(second.certPem));
      assert.equal((await loadCertificateSet(storage, ISSUER, NAME)).meta.renewal.failures, 1);
    });
  });

  describe('listCertificateNames', () => {
    it('lists folder names with one list call per issuer and reads no file', async () => {
      const inner = new MemoryStorage();
      for (const issuer of ['ca-one', 'ca-two']) {
        for (const name of ['a.test', '*.b.test']) {
          const pair = name === 'a.test' ? first : second;
          await saveCertificateSet(inner, { ...pair, meta: buildCertificateMeta({ ...pair, issuerKey: issuer, names: [name] }) });
        }
      }
      const { storage, calls } = counting(inner);
      const all = await listCertificateNames(storage);
      assert.deepEqual(
        all.map((r) => `${r.issuerKey}/${r.name}`).sort(),
        ['ca-one/a.test', 'ca-one/wildcard_.b.test', 'ca-two/a.test', 'ca-two/wildcard_.b.test'],
      );
      assert.deepEqual(calls, { list: 3 });
      assert.deepEqual((await listCertificateNames(storage, 'ca-two')).map((r) => r.name).sort(), ['a.test', 'wildcard_.b.test']);
      assert.deepEqual(await listCertificateNames(storage, 'nobody'), []);
      assert.deepEqual(await listCertificateNames(new MemoryStorage()), []);
    });
  });
});
