/**
 * Redis going away under a fleet member (issue 17, item 4), on a redis-server
 * this file starts and then kills (SIGKILL), stops past the lock TTL, freezes
 * (SIGSTOP) and restarts on the same port and data: every call fails with a
 * typed error instead of hanging (a hang fails the test by its timeout), no
 * acknowledged write is lost, a lock is never held twice, and work resumes
 * once Redis is back.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { CertKeeper, listCertificateNames, loadCertificateSet } from 'certkeeper';
import { RedisStorage, type RedisStorageOptions } from '@certkeeper/storage-redis';
import { eventually, until } from '../../../test/helpers/eventually.js';
import { silentLogger } from '../../../test/helpers/logging.js';
import { redisServerSkipReason, startOwnRedis, type OwnRedis } from './own-server.js';

const skip = redisServerSkipReason();
const TIMEOUT_MS = 1_000;

function isCode(error: unknown, ...codes: string[]): boolean {
  return codes.includes((error as { code?: string }).code ?? '');
}

describe('RedisStorage when Redis fails', { skip }, () => {
  let redis: OwnRedis;
  const opened: RedisStorage[] = [];

  function open(options: RedisStorageOptions = {}): RedisStorage {
    const storage = new RedisStorage({ url: redis.url, prefix: `faults:${randomUUID()}:`, operationTimeoutMs: TIMEOUT_MS, lockTtlMs: 2_000, lockPollMs: 50, logger: silentLogger(), ...options });
    opened.push(storage);
    return storage;
  }
  async function up(): Promise<void> {
    if (!redis.process.running) await redis.process.start();
  }

  before(async () => {
    redis = await startOwnRedis();
  });
  after(async () => {
    await up().catch(() => undefined);
    await Promise.all(opened.map((s) => s.close()));
    await redis?.close();
  });

  it('killed (SIGKILL) with writes in flight: each write succeeds or fails with ERR_STORAGE, and none acknowledged is lost', { timeout: 60_000 }, async () => {
    const prefix = `kill:${randomUUID()}:`;
    const writer = open({ prefix });
    const acknowledged: string[] = [];
    const failures: unknown[] = [];
    let n = 0;
    // Four writers, each with one write in flight at all times, until Redis dies under them (bounded count).
    const writeUntilFailure = async (): Promise<void> => {
      while (n < 5_000) {
        const key = `k${n++}`;
        try {
          await writer.store(key, Buffer.from(`value of ${key}`));
          acknowledged.push(key);
        } catch (error) {
          failures.push(error);
          return;
        }
      }
    };
    const writers = [writeUntilFailure(), writeUntilFailure(), writeUntilFailure(), writeUntilFailure()];
    await until(() => acknowledged.length >= 10 || failures.length > 0, 'ten acknowledged writes');
    assert.deepEqual(failures.map(String), [], 'Redis answers before it is killed');
    await redis.process.kill();
    await Promise.all(writers);
    assert.equal(failures.length, 4, `every writer had a write in flight when Redis died (${acknowledged.length} acknowledged)`);
    for (const error of failures) assert.ok(isCode(error, 'ERR_STORAGE'), String(error));
    await assert.rejects(writer.load('k0'), { code: 'ERR_STORAGE' });
    await assert.rejects(writer.tryLock('l'), { code: 'ERR_STORAGE' });
    await up();
    await eventually(() => writer.load('k0'));
    for (const key of acknowledged) assert.equal((await writer.load(key)).toString(), `value of ${key}`, `acknowledged write ${key} survived`);
  });

  it('stopped past the lock TTL: the holder finds its lock lost, a peer takes it, and the old holder cannot release it', { timeout: 60_000 }, async () => {
    const prefix = `ttl:${randomUUID()}:`;
    const holder = open({ prefix });
    const peer = open({ prefix });
    await holder.lock('name');
    await redis.process.stop();
    await assert.rejects(holder.assertLockHeld('name'), { code: 'ERR_STORAGE' });
    // Longer than the TTL: the lock key's expiry is an absolute time, so it is gone when Redis loads its data again.
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    await up();
    await eventually(() => holder.assertLockHeld('name').then(() => assert.fail('still held'), (e: unknown) => (isCode(e, 'ERR_LOCK_LOST') ? undefined : Promise.reject(e))));
    await eventually(() => peer.lock('name', { timeoutMs: 5_000 }));
    await holder.unlock('name');
    await peer.assertLockHeld('name');
    await peer.unlock('name');
  });

  it('restarted within the TTL: the lock is still held by its holder and by nobody else', { timeout: 60_000 }, async () => {
    const prefix = `restart:${randomUUID()}:`;
    const holder = open({ prefix, lockTtlMs: 10_000 });
    const peer = open({ prefix, lockTtlMs: 10_000 });
    await holder.lock('name');
    await redis.process.kill();
    await up();
    await eventually(() => holder.assertLockHeld('name'));
    assert.equal(await eventually(() => peer.tryLock('name')), false);
    await holder.unlock('name');
    assert.equal(await peer.tryLock('name'), true);
    await peer.unlock('name');
  });

  it('frozen (SIGSTOP): calls fail with ERR_STORAGE instead of hanging, and work again after SIGCONT', { timeout: 60_000 }, async () => {
    const s = open();
    await s.store('a', Buffer.from('1'));
    await redis.process.freeze();
    try {
      await assert.rejects(s.store('a', Buffer.from('2')), { code: 'ERR_STORAGE' });
      await assert.rejects(s.load('a'), { code: 'ERR_STORAGE' });
      await assert.rejects(s.lock('l', { timeoutMs: 5_000 }), { code: 'ERR_STORAGE' });
    } finally {
      redis.process.thaw();
    }
    await eventually(() => s.store('b', Buffer.from('3')));
    assert.equal((await s.load('b')).toString(), '3');
  });

  it('a keeper renewing while Redis is down fails with ERR_STORAGE, keeps serving, loses no certificate, and renews once Redis is back', { timeout: 90_000 }, async () => {
    const storage = open();
    const keeper = new CertKeeper({ storage, issuers: [{ type: 'internal' }], logger: silentLogger(), challenges: { http01: false, tlsAlpn01: { listener: false } } });
    try {
      const names = ['a.redis-faults.test', 'b.redis-faults.test', 'c.redis-faults.test'];
      await keeper.manageSync(names);
      const served = keeper.status(names[0]!).serialNumber;
      await redis.process.kill();
      await assert.rejects(keeper.renew(names[0]!, { force: true }), { code: 'ERR_STORAGE' });
      assert.equal(keeper.orderStats().inFlight, 0, 'the order slot was given back');
      assert.equal(keeper.status(names[0]!).serialNumber, served, 'the served certificate is kept');
      await up();
      const renewed = await eventually(() => keeper.renew(names[0]!, { force: true }));
      assert.notEqual(renewed.serialNumber, served);
      const stored = await listCertificateNames(storage);
      assert.deepEqual(stored.map((r) => r.name).sort(), names);
      for (const ref of stored) {
        const set = await loadCertificateSet(storage, ref.issuerKey, ref.name);
        assert.equal(set.meta.serialNumber.toUpperCase(), keeper.status(ref.name).serialNumber?.toUpperCase(), `${ref.name}: the stored set is the served one`);
      }
    } finally {
      await keeper.close();
    }
  });
});
