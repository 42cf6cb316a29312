import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { ClosedError, InvalidOptionError, LockLostError, LockTimeoutError, StorageError, StorageNotFoundError } from 'certkeeper/storage';
import type { Storage } from 'certkeeper/storage';
import { runStorageConformance } from 'certkeeper/testing';
import { RedisStorage, type RedisStorageOptions } from '@certkeeper/storage-redis';
import { REDIS_URL, deleteByPrefix, redisSkipReason } from './server.js';

const skip = await redisSkipReason();
const runId = randomUUID();
const STALE_LOCK_MS = 500;

if (skip) {
  it('storage conformance: redis', { skip }, () => {});
} else {
  const conformancePrefix = `certkeeper-test:${runId}:conformance:`;
  const encryptionKey = randomBytes(32);
  for (const encrypted of [false, true]) {
    runStorageConformance({
      name: encrypted ? 'redis (encrypted private keys)' : 'redis',
      createStorage: async () =>
        new RedisStorage({
          url: REDIS_URL,
          prefix: conformancePrefix,
          lockTtlMs: STALE_LOCK_MS,
          lockPollMs: 25,
          ...(encrypted ? { encryptionKey } : {}),
        }),
      staleLockMs: STALE_LOCK_MS,
      abandonLock: (storage: Storage, lockName: string) => (storage as RedisStorage).abandonLock(lockName),
    });
  }
  after(async () => {
    const admin = new Redis(REDIS_URL);
    await deleteByPrefix(admin, conformancePrefix);
    await admin.quit();
  });
}

describe('RedisStorage', { skip }, () => {
  let admin: Redis;
  const opened: RedisStorage[] = [];
  let counter = 0;
  const prefixes: string[] = [];

  /** A storage on a fresh prefix (or `prefix` to share one), closed after the suite. */
  function open(options: RedisStorageOptions = {}): RedisStorage {
    const prefix = options.prefix ?? `certkeeper-test:${runId}:${counter++}:`;
    prefixes.push(prefix);
    const storage = new RedisStorage({ url: REDIS_URL, ...options, prefix });
    opened.push(storage);
    return storage;
  }
  function sharedPair(options: RedisStorageOptions = {}): [RedisStorage, RedisStorage] {
    const prefix = `certkeeper-test:${runId}:${counter++}:`;
    return [open({ ...options, prefix }), open({ ...options, prefix })];
  }

  before(() => {
    admin = new Redis(REDIS_URL);
  });
  after(async () => {
    await Promise.all(opened.map((s) => s.close()));
    await deleteByPrefix(admin, `certkeeper-test:${runId}:`);
    await admin.quit();
  });

  describe('values', () => {
    it('stores, loads, stats and deletes binary values', async () => {
      const s = open();
      const value = randomBytes(300);
      await s.store('a/b/c.bin', value);
      assert.deepEqual(await s.load('a/b/c.bin'), value);
      const info = await s.stat('a/b/c.bin');
      assert.equal(info.key, 'a/b/c.bin');
      assert.equal(info.size, 300);
      assert.equal(info.isTerminal, true);
      assert.ok(Math.abs(info.modified.getTime() - Date.now()) < 60_000);
      assert.equal(await s.exists('a/b/c.bin'), true);
      assert.equal(await s.exists('a/b'), true);
      const dir = await s.stat('a/b');
      assert.equal(dir.isTerminal, false);
      assert.equal(dir.modified.getTime(), info.modified.getTime());
      await s.delete('a/b/c.bin');
      assert.equal(await s.exists('a/b/c.bin'), false);
      await assert.rejects(s.load('a/b/c.bin'), StorageNotFoundError);
      await assert.rejects(s.stat('a/b'), StorageNotFoundError);
    });

    it('lists one level or recursively, from the index, and deletes folders recursively', async () => {
      const s = open();
      for (const key of ['certs/x/x.crt', 'certs/x/x.key', 'certs/y/y.crt', 'certs-old/z', 'certs.txt', 'other']) {
        await s.store(key, Buffer.from(key));
      }
      assert.deepEqual(await s.list('', false), ['certs', 'certs-old', 'certs.txt', 'other']);
      assert.deepEqual(await s.list('certs', false), ['certs/x', 'certs/y']);
      assert.deepEqual(await s.list('certs', true), ['certs/x', 'certs/x/x.crt', 'certs/x/x.key', 'certs/y', 'certs/y/y.crt']);
      await assert.rejects(s.list('nothing', false), StorageNotFoundError);
      await s.delete('certs');
      assert.deepEqual(await s.list('', false), ['certs-old', 'certs.txt', 'other']);
      assert.equal(await s.exists('certs/x/x.crt'), false);
      const raw = await admin.zrange(`${prefixes.at(-1)}index`, 0, -1);
      assert.deepEqual(raw.sort(), ['certs-old/z', 'certs.txt', 'other']);
    });

    it('lists folders larger than one page correctly, skipping through sub-folders', async () => {
      const s = open();
      // 1,200 keys under "big/a" and 1,200 names directly under "big": more than a page (1,000) each.
      const names: string[] = [];
      const stores: Promise<void>[] = [];
      for (let i = 0; i < 1200; i++) {
        const name = `n${String(i).padStart(4, '0')}`;
        names.push(`big/${name}`);
        stores.push(s.store(`big/a/${name}`, Buffer.from('x')), s.store(`big/${name}`, Buffer.from('x')));
      }
      await Promise.all(stores);
      const listed = await s.list('big', false);
      assert.deepEqual(listed, ['big/a', ...names].sort());
      assert.equal((await s.list('big', true)).length, 2401);
      await s.delete('big');
      await assert.rejects(s.list('big', true), StorageNotFoundError);
    });

    it('rejects invalid keys', async () => {
      const s = open();
      await assert.rejects(s.store('../etc/passwd', Buffer.from('x')), { code: 'ERR_INVALID_STORAGE_KEY' });
      await assert.rejects(s.load('a\u0000b'), { code: 'ERR_INVALID_STORAGE_KEY' });
    });

    it('keeps working with a client that has its own keyPrefix (recursive delete builds keys in Lua)', async () => {
      const client = new Redis(REDIS_URL, { keyPrefix: `certkeeper-test:${runId}:kp:` });
      try {
        const s = new RedisStorage({ client, prefix: 'inner:' });
        await s.store('d/one', Buffer.from('1'));
        assert.equal(await admin.exists(`certkeeper-test:${runId}:kp:inner:v:d/one`), 1);
        await s.delete('d');
        assert.equal(await admin.exists(`certkeeper-test:${runId}:kp:inner:v:d/one`), 0);
        await s.close();
      } finally {
        await client.quit();
      }
    });
  });

  describe('locks', () => {
    it('always sets a TTL on a lock key', async () => {
      const s = open({ lockTtlMs: 5_000 });
      await s.lock('ttl');
      const pttl = await admin.pttl(`${prefixes.at(-1)}lock:ttl`);
      assert.ok(pttl > 0 && pttl <= 5_000, `PTTL ${pttl}`);
      await s.unlock('ttl');
      assert.equal(await admin.exists(`${prefixes.at(-1)}lock:ttl`), 0);
    });

    it('excludes a second instance until released; tryLock does not wait', async () => {
      const [a, b] = sharedPair({ lockPollMs: 20 });
      await a.lock('l');
      assert.equal(await b.tryLock('l'), false);
      let bHasIt = false;
      const waiting = b.lock('l').then(() => {
        bHasIt = true;
      });
      await a.unlock('l');
      await waiting;
      assert.equal(bHasIt, true);
      await assert.rejects(a.assertLockHeld('l'), LockLostError);
      await b.assertLockHeld('l');
      await b.unlock('l');
    });

    it('ignores unlock by an instance that does not hold the lock', async () => {
      const [a, b] = sharedPair();
      await a.lock('mine');
      await b.unlock('mine');
      await a.assertLockHeld('mine');
      assert.equal(await b.tryLock('mine'), false);
      await a.unlock('mine');
    });

    it('times out and aborts waits with typed errors', async () => {
      const [a, b] = sharedPair({ lockPollMs: 20 });
      await a.lock('busy');
      await assert.rejects(b.lock('busy', { timeoutMs: 50 }), LockTimeoutError);
      const controller = new AbortController();
      const waiting = b.lock('busy', { signal: controller.signal });
      controller.abort();
      await assert.rejects(waiting, { code: 'ERR_ABORTED' });
      await a.unlock('busy');
    });

    it('keeps a held lock alive by refreshing its TTL', async () => {
      const [a, b] = sharedPair({ lockTtlMs: 5_000, lockRefreshMs: 50 });
      await a.lock('kept');
      const key = `${prefixes.at(-1)}lock:kept`;
      // Shorten the lease behind its back; only a refresh can lengthen it again.
      await admin.pexpire(key, 2_000);
      let refreshed = false;
      for (let i = 0; i < 100 && !refreshed; i++) {
        await new Promise((r) => setTimeout(r, 50));
        refreshed = (await admin.pttl(key)) > 2_000;
      }
      assert.ok(refreshed, 'the lock TTL was never extended');
      await a.assertLockHeld('kept');
      assert.equal(await b.tryLock('kept'), false);
      await a.unlock('kept');
    });

    it('hands a dead holder\'s lock to another instance after the TTL, and the old holder finds out', async () => {
      const [a, b] = sharedPair({ lockTtlMs: 150, lockPollMs: 20 });
      await a.lock('job');
      await a.abandonLock('job');
      await b.lock('job', { timeoutMs: 5_000 });
      await b.assertLockHeld('job');
      await assert.rejects(a.assertLockHeld('job'), (error: unknown) => error instanceof LockLostError && error.lockName === 'job');
      // The old holder's late unlock must not free the new holder's lock.
      await a.unlock('job');
      await b.assertLockHeld('job');
      await b.unlock('job');
    });

    it('close() releases held locks and stops further use', async () => {
      const [a, b] = sharedPair();
      await a.lock('c1');
      await a.close();
      await a.close();
      assert.equal(await b.tryLock('c1'), true);
      await assert.rejects(a.load('x'), ClosedError);
      await assert.rejects(a.lock('c2'), ClosedError);
    });
  });

  describe('clients', () => {
    it('does not close a client it was given, and closes one it created', async () => {
      const client = new Redis(REDIS_URL);
      const s = new RedisStorage({ client, prefix: `certkeeper-test:${runId}:given:` });
      prefixes.push(`certkeeper-test:${runId}:given:`);
      await s.store('k', Buffer.from('v'));
      await s.close();
      assert.equal(await client.ping(), 'PONG');
      assert.equal(client.status, 'ready');
      await client.quit();

      const connectionName = `ck-own-${runId}`;
      const own = open({ redisOptions: { connectionName } });
      await own.store('k', Buffer.from('v'));
      assert.match(String(await admin.client('LIST')), new RegExp(`name=${connectionName} `));
      await own.close();
      assert.doesNotMatch(String(await admin.client('LIST')), new RegExp(`name=${connectionName} `));
    });

    it('validates its options', () => {
      assert.throws(() => new RedisStorage({ prefix: '' }), InvalidOptionError);
      assert.throws(() => new RedisStorage({ url: 'http://x' }), InvalidOptionError);
      assert.throws(() => new RedisStorage({ lockTtlMs: -1 }), (e: unknown) => e instanceof InvalidOptionError && e.option === 'lockTtlMs');
      assert.throws(() => new RedisStorage({ lockTtlMs: 100, lockRefreshMs: 100 }), InvalidOptionError);
      assert.throws(() => new RedisStorage({ encryptionKey: 'short' }), InvalidOptionError);
    });

    it('reports a failing server as a StorageError', async () => {
      const s = new RedisStorage({ url: 'redis://127.0.0.1:1', redisOptions: { retryStrategy: () => null, maxRetriesPerRequest: 0 } });
      await assert.rejects(s.load('k'), StorageError);
      await s.close();
    });
  });

  describe('encryption at rest', () => {
    const pem = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();

    it('stores private keys encrypted in Redis and loads them back', async () => {
      const key = randomBytes(32).toString('base64');
      const s = open({ encryptionKey: key });
      const prefix = prefixes.at(-1)!;
      await s.store('certificates/ca/example.com/example.com.key', Buffer.from(pem));
      await s.store('certificates/ca/example.com/example.com.crt', Buffer.from('CERT'));
      const raw = await admin.hgetBuffer(`${prefix}v:certificates/ca/example.com/example.com.key`, 'v');
      assert.ok(raw && raw.length > pem.length);
      assert.ok(!raw.toString('latin1').includes('PRIVATE KEY'));
      assert.equal((await admin.hget(`${prefix}v:certificates/ca/example.com/example.com.crt`, 'v')), 'CERT');
      assert.equal((await s.load('certificates/ca/example.com/example.com.key')).toString(), pem);

      const wrongKey = open({ prefix, encryptionKey: randomBytes(32) });
      await assert.rejects(wrongKey.load('certificates/ca/example.com/example.com.key'), (error: unknown) => {
        assert.ok(error instanceof StorageError);
        assert.match(error.message, /different encryptionKey/);
        assert.ok(!error.message.includes(key));
        return true;
      });
    });
  });
});
