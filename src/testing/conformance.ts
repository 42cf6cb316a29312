/**
 * The storage conformance suite: one set of node:test cases every Storage
 * implementation must pass (file, memory, and the Redis/PostgreSQL adapters).
 *
 * Usage, in a test file:
 *
 *   runStorageConformance({
 *     name: 'redis',
 *     createStorage: async () => new RedisStorage({ ... }),
 *   });
 *
 * `createStorage` must return a NEW instance connected to the SAME backend on
 * every call, the way two processes share one database: the lock tests need
 * two independent holders. Every case writes under a unique random prefix,
 * so the backend need not be empty, and removes what it wrote.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, afterEach, describe, it } from 'node:test';
import {
  buildCertificateMeta,
  deleteCertificateSet,
  listCertificateNames,
  loadCertificateSet,
  saveCertificateSet,
  updateCertificateMeta,
} from '../storage/certificates.js';
import { hasLockLeaseCheck, hasTryLock, type Storage } from '../storage/types.js';
import { LOCK_WAIT_LIMIT_MS, assertCode, assertCodeIn, expectCode, selfSignedPair } from './conformance-helpers.js';
import { fencingCases } from './conformance-fencing.js';
import { folderCases } from './conformance-folders.js';

export interface StorageConformanceOptions {
  /** Shown in the test names. */
  name: string;
  /** A new instance on the shared backend, each call. */
  createStorage: () => Promise<Storage>;
  /** Disposes of an instance (default: its close(), if any). */
  destroy?: (storage: Storage) => Promise<void>;
  /** How long after its holder "dies" a lock may be taken over (lease TTL / stale period); needed for the stale-lock case. */
  staleLockMs?: number;
  /**
   * Simulates the holder of `lockName` crashing: the lock stops being
   * refreshed but is not released. Needed for the stale-lock case.
   */
  abandonLock?: (storage: Storage, lockName: string) => Promise<void>;
}


export function runStorageConformance(options: StorageConformanceOptions): void {
  const { name, createStorage, staleLockMs, abandonLock } = options;
  const destroy = options.destroy ?? (async (s: Storage) => s.close?.());
  const runId = randomBytes(6).toString('hex');
  const root = `conformance/${runId}`;
  const issuerKey = `conformance-${runId}`;
  const opened: Storage[] = [];
  let lockCounter = 0;

  const open = async (): Promise<Storage> => {
    const storage = await createStorage();
    opened.push(storage);
    return storage;
  };
  const uniqueLock = (): string => `conformance_${runId}_${++lockCounter}`;
  const bytes = (text: string): Buffer => Buffer.from(text, 'utf8');

  describe(`storage conformance: ${name}`, () => {
    afterEach(async () => {
      for (const storage of opened.splice(0)) await destroy(storage);
    });

    after(async () => {
      const storage = await createStorage();
      try {
        await storage.delete(root);
        await storage.delete(`certificates/${issuerKey}`);
      } finally {
        await destroy(storage);
      }
    });

    describe('keys and values', () => {
      it('stores, loads, checks and deletes a value', async () => {
        const s = await open();
        const key = `${root}/crud/value.txt`;
        assert.equal(await s.exists(key), false);
        await s.store(key, bytes('hello'));
        assert.equal(await s.exists(key), true);
        assert.equal((await s.load(key)).toString('utf8'), 'hello');
        await s.delete(key);
        assert.equal(await s.exists(key), false);
        await expectCode(s.load(key), 'ERR_STORAGE_NOT_FOUND');
      });

      it('keeps binary values byte for byte, including every byte value and an empty value', async () => {
        const s = await open();
        const every = Buffer.alloc(256);
        for (let i = 0; i < 256; i++) every[i] = i;
        const big = randomBytes(256 * 1024);
        await s.store(`${root}/binary/every`, every);
        await s.store(`${root}/binary/big`, big);
        await s.store(`${root}/binary/empty`, new Uint8Array(0));
        assert.deepEqual(await s.load(`${root}/binary/every`), every);
        assert.deepEqual(await s.load(`${root}/binary/big`), big);
        assert.equal((await s.load(`${root}/binary/empty`)).length, 0);
      });

      it('is not affected by the caller changing its buffer after store', async () => {
        const s = await open();
        const value = bytes('original');
        await s.store(`${root}/copy/value`, value);
        value.fill(0);
        assert.equal((await s.load(`${root}/copy/value`)).toString('utf8'), 'original');
      });

      it('overwrites a value, and another instance sees the new one', async () => {
        const a = await open();
        const b = await open();
        const key = `${root}/overwrite/value`;
        await a.store(key, bytes('first value, longer'));
        await a.store(key, bytes('second'));
        assert.equal((await b.load(key)).toString('utf8'), 'second');
        assert.equal((await b.stat(key)).size, 6);
      });

      it('lists direct children, or everything below when recursive', async () => {
        const s = await open();
        const p = `${root}/list`;
        for (const key of ['a', 'b/c', 'b/d', 'e/f/g']) await s.store(`${p}/${key}`, bytes(key));
        assert.deepEqual((await s.list(p, false)).sort(), [`${p}/a`, `${p}/b`, `${p}/e`]);
        assert.deepEqual(
          (await s.list(p, true)).sort(),
          [`${p}/a`, `${p}/b`, `${p}/b/c`, `${p}/b/d`, `${p}/e`, `${p}/e/f`, `${p}/e/f/g`],
        );
        assert.deepEqual((await s.list(`${p}/b`, false)).sort(), [`${p}/b/c`, `${p}/b/d`]);
      });

      it('throws StorageNotFoundError for a missing key in load, stat and list', async () => {
        const s = await open();
        const missing = `${root}/missing/nothing-here`;
        await expectCode(s.load(missing), 'ERR_STORAGE_NOT_FOUND');
        await expectCode(s.stat(missing), 'ERR_STORAGE_NOT_FOUND');
        await expectCode(s.list(missing, false), 'ERR_STORAGE_NOT_FOUND');
        await expectCode(s.list(missing, true), 'ERR_STORAGE_NOT_FOUND');
      });

      it('deletes a prefix recursively and ignores a missing key', async () => {
        const s = await open();
        const p = `${root}/delete`;
        for (const key of ['keep', 'tree/x', 'tree/y/z']) await s.store(`${p}/${key}`, bytes(key));
        await s.delete(`${p}/tree`);
        assert.equal(await s.exists(`${p}/tree/x`), false);
        assert.equal(await s.exists(`${p}/tree/y/z`), false);
        assert.equal(await s.exists(`${p}/tree`), false);
        assert.equal((await s.load(`${p}/keep`)).toString('utf8'), 'keep');
        await s.delete(`${p}/never-existed`);
        await s.delete(`${p}/tree`);
      });

      it('reports a prefix of stored keys as existing', async () => {
        const s = await open();
        await s.store(`${root}/exists/dir/leaf`, bytes('x'));
        assert.equal(await s.exists(`${root}/exists/dir`), true);
        assert.equal(await s.exists(`${root}/exists/dir/leaf`), true);
        assert.equal(await s.exists(`${root}/exists/other`), false);
      });

      it('stats a value (key, size, modified, terminal) and a prefix (not terminal)', async () => {
        const s = await open();
        const key = `${root}/stat/dir/value`;
        const before = Date.now();
        await s.store(key, randomBytes(1234));
        const info = await s.stat(key);
        assert.equal(info.key, key);
        assert.equal(info.size, 1234);
        assert.equal(info.isTerminal, true);
        assert.ok(info.modified instanceof Date);
        // Loose bound: only catches a wrong unit or epoch, never timing.
        assert.ok(Math.abs(info.modified.getTime() - before) < 10 * 60_000, 'modified is close to now');
        const dir = await s.stat(`${root}/stat/dir`);
        assert.equal(dir.isTerminal, false);
      });

      it('refuses keys that would climb out of the storage, or keeps them contained', async () => {
        const s = await open();
        const marker = bytes(`marker-${runId}`);
        const hostile = [
          'a/../../foo', 'b\\..\\..\\foo', './.', '\0', '%2e%2e', '%2e%2e/foo', '../foo', '..', '/foo', '/etc/passwd',
          'a/./b', 'a/%2f/b', 'a%5c..%5cfoo', 'foo\0bar', 'a\u0001b', '', 'C:\\foo',
        ];
        for (const key of hostile) {
          let stored = false;
          try {
            await s.store(key, marker);
            stored = true;
          } catch (err) {
            assertCode(err, 'ERR_INVALID_STORAGE_KEY', `store(${JSON.stringify(key)})`);
          }
          if (stored) {
            // Accepted: it must be a key of its own, not an alias of another one.
            assert.deepEqual(await s.load(key), marker);
            for (const alias of ['foo', `${root}/foo`, 'etc/passwd', 'a/b', 'b']) {
              const aliased = await s.load(alias).catch(() => undefined);
              assert.ok(aliased === undefined || !aliased.equals(marker), `${JSON.stringify(key)} aliased ${alias}`);
            }
            await s.delete(key);
          }
          for (const op of [() => s.load(key), () => s.stat(key), () => s.exists(key), () => s.delete(key)]) {
            await op().catch((err: unknown) => {
              assertCodeIn(err, ['ERR_INVALID_STORAGE_KEY', 'ERR_STORAGE_NOT_FOUND'], JSON.stringify(key));
            });
          }
        }
      });

      it('keeps one intact value when writers race on one key', async () => {
        const a = await open();
        const b = await open();
        const key = `${root}/race/value`;
        for (let round = 0; round < 3; round++) {
          const values = Array.from({ length: 8 }, (_, i) => Buffer.alloc(64 * 1024 + i, 0x41 + i));
          await Promise.all(values.map((v, i) => (i % 2 === 0 ? a : b).store(key, v)));
          const final = await a.load(key);
          assert.ok(values.some((v) => v.equals(final)), 'final value is exactly one of the written values');
        }
      });
    });

    describe('locks', () => {
      it('never lets two holders in at once, across two instances', { timeout: 60_000 }, async () => {
        const a = await open();
        const b = await open();
        const lock = uniqueLock();
        let inside = 0;
        let overlaps = 0;
        let entries = 0;
        const worker = async (s: Storage): Promise<void> => {
          for (let i = 0; i < 3; i++) {
            await s.lock(lock, { timeoutMs: LOCK_WAIT_LIMIT_MS });
            try {
              inside++;
              entries++;
              if (inside !== 1) overlaps++;
              // Hold across a few event-loop turns so an overlap would be seen.
              for (let t = 0; t < 3; t++) await new Promise((r) => setImmediate(r));
              inside--;
            } finally {
              await s.unlock(lock);
            }
          }
        };
        await Promise.all([worker(a), worker(b), worker(a), worker(b)]);
        assert.equal(overlaps, 0);
        assert.equal(entries, 12);
      });

      it('hands a released lock to a waiter', { timeout: 60_000 }, async () => {
        const a = await open();
        const b = await open();
        const lock = uniqueLock();
        await a.lock(lock);
        let acquired = false;
        const waiting = b.lock(lock, { timeoutMs: LOCK_WAIT_LIMIT_MS }).then(() => {
          acquired = true;
        });
        await new Promise((r) => setTimeout(r, 50));
        assert.equal(acquired, false, 'the waiter must not get a held lock');
        await a.unlock(lock);
        await waiting;
        assert.equal(acquired, true);
        await b.unlock(lock);
      });

      it('tryLock takes a free lock and refuses a held one', async (t) => {
        const a = await open();
        const b = await open();
        if (!hasTryLock(a) || !hasTryLock(b)) {
          t.skip('no tryLock');
          return;
        }
        const lock = uniqueLock();
        assert.equal(await a.tryLock(lock), true);
        assert.equal(await b.tryLock(lock), false);
        await a.unlock(lock);
        assert.equal(await b.tryLock(lock), true);
        await b.unlock(lock);
      });

      it('ignores unlock by an instance that does not hold the lock', { timeout: 60_000 }, async () => {
        const a = await open();
        const b = await open();
        const lock = uniqueLock();
        await a.lock(lock);
        await b.unlock(lock);
        await expectCode(b.lock(lock, { timeoutMs: 150 }), 'ERR_LOCK_TIMEOUT');
        if (hasLockLeaseCheck(a)) await a.assertLockHeld(lock);
        await a.unlock(lock);
        await b.lock(lock, { timeoutMs: LOCK_WAIT_LIMIT_MS });
        await b.unlock(lock);
      });

      it('stops waiting with LockTimeoutError or AbortedError', { timeout: 60_000 }, async () => {
        const a = await open();
        const b = await open();
        const lock = uniqueLock();
        await a.lock(lock);
        await expectCode(b.lock(lock, { timeoutMs: 100 }), 'ERR_LOCK_TIMEOUT');
        const controller = new AbortController();
        const waiting = b.lock(lock, { signal: controller.signal });
        setTimeout(() => controller.abort(), 50);
        await expectCode(waiting, 'ERR_ABORTED');
        await expectCode(b.lock(lock, { signal: AbortSignal.abort() }), 'ERR_ABORTED');
        await a.unlock(lock);
        // The abandoned waits must not have left b holding anything.
        await a.lock(lock, { timeoutMs: LOCK_WAIT_LIMIT_MS });
        await a.unlock(lock);
      });

      it('releases its locks on close', { timeout: 60_000 }, async (t) => {
        const a = await open();
        const b = await open();
        if (typeof a.close !== 'function') {
          t.skip('no close()');
          return;
        }
        const lock = uniqueLock();
        await a.lock(lock);
        await a.close();
        await a.close();
        await b.lock(lock, { timeoutMs: LOCK_WAIT_LIMIT_MS });
        await b.unlock(lock);
      });

      it(
        'lets another holder take over a lock whose holder died',
        { timeout: 60_000 + (staleLockMs ?? 0) * 3, skip: abandonLock && staleLockMs ? false : 'needs abandonLock and staleLockMs' },
        async () => {
          if (!abandonLock || !staleLockMs) return;
          const a = await open();
          const b = await open();
          const lock = uniqueLock();
          await a.lock(lock);
          await abandonLock(a, lock);
          await b.lock(lock, { timeoutMs: staleLockMs * 3 + LOCK_WAIT_LIMIT_MS });
          if (hasLockLeaseCheck(a)) await expectCode(a.assertLockHeld(lock), 'ERR_LOCK_LOST');
          if (hasLockLeaseCheck(b)) await b.assertLockHeld(lock);
          await a.unlock(lock);
          // The dead holder's unlock must not free the new holder's lock.
          if (hasTryLock(a)) assert.equal(await a.tryLock(lock), false);
          await b.unlock(lock);
        },
      );
    });

    describe('certificate sets', () => {
      it('saves a set with one instance and loads it, verified, with another', async () => {
        const a = await open();
        const b = await open();
        const certName = `cert-${runId}.example.test`;
        const { certPem, keyPem } = await selfSignedPair([certName, `www.${certName}`]);
        const meta = buildCertificateMeta({ certPem, keyPem, issuerKey, issuerData: { order: 'https://ca.test/order/1' } });
        const saved = await saveCertificateSet(a, { certPem, keyPem, meta });
        const loaded = await loadCertificateSet(b, issuerKey, certName);
        assert.equal(loaded.certPem, certPem);
        assert.equal(loaded.keyPem, keyPem);
        assert.deepEqual(loaded.meta, saved.meta);
        assert.deepEqual(loaded.meta.names, [certName, `www.${certName}`]);

        const updated = await updateCertificateMeta(b, issuerKey, certName, (m) => ({
          ...m,
          renewal: { failures: 2, lastError: { code: 'ERR_ACME_UNREACHABLE', message: 'down', at: new Date(0).toISOString() } },
        }));
        assert.equal(updated.renewal.failures, 2);
        assert.deepEqual((await loadCertificateSet(a, issuerKey, certName)).meta.renewal, updated.renewal);

        const refs = await listCertificateNames(a, issuerKey);
        assert.deepEqual(refs, [{ issuerKey, name: certName }]);
        await deleteCertificateSet(a, issuerKey, certName);
        await expectCode(loadCertificateSet(a, issuerKey, certName), 'ERR_STORAGE_NOT_FOUND');
      });
    });

    folderCases({ open, root, issuerKey });
    fencingCases({ open, uniqueLock, root, issuerKey, runId, ...(staleLockMs === undefined ? {} : { staleLockMs }), ...(abandonLock === undefined ? {} : { abandonLock }) });
  });
}
