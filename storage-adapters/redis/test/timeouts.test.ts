/**
 * Every Redis call is bounded (issue 14, defect 11): behind a proxy that
 * stops forwarding, or with the server side cut, operations fail with
 * ERR_STORAGE within a bound, and a keeper renewing over it gives back the
 * name's lock and its order slot. The bounds below are 10x the configured
 * timeout: they only prove that the timeout fired (before, calls hung for
 * good or for 86 s).
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { CertKeeper } from '../../../src/manager/keeper.js';
import { startBlackholeProxy, type BlackholeProxy } from '../../../test/helpers/blackhole-proxy.js';
import { beforeDeadline } from '../../../test/helpers/deadline.js';
import { silentLogger } from '../../../test/helpers/logging.js';
import { RedisStorage } from '../src/index.js';
import { REDIS_URL, deleteByPrefix, redisSkipReason } from './server.js';

const skip = await redisSkipReason();
const TIMEOUT_MS = 300;
const BOUND_MS = 10 * TIMEOUT_MS;
const prefix = `certkeeper-test:${randomUUID()}:timeouts:`;
const redisPort = Number(new URL(REDIS_URL).port || 6379);

async function failsWithinBound(what: Promise<unknown>): Promise<void> {
  await assert.rejects(beforeDeadline(what, BOUND_MS, 'the storage call'), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'ERR_STORAGE', err.message);
    assert.ok(err.cause !== undefined, 'the cause is kept');
    return true;
  });
}

describe('RedisStorage operation timeouts', { skip }, () => {
  const proxies: BlackholeProxy[] = [];
  const storages: RedisStorage[] = [];
  let n = 0;

  async function behindProxy(): Promise<{ proxy: BlackholeProxy; storage: RedisStorage }> {
    const proxy = await startBlackholeProxy(redisPort, new URL(REDIS_URL).hostname);
    proxies.push(proxy);
    const storage = new RedisStorage({
      url: `redis://127.0.0.1:${proxy.port}`,
      prefix: `${prefix}${n++}:`,
      operationTimeoutMs: TIMEOUT_MS,
      lockTtlMs: 1_000,
      lockPollMs: 25,
      logger: silentLogger(),
    });
    storages.push(storage);
    return { proxy, storage };
  }

  after(async () => {
    await Promise.all(storages.map((s) => s.close().catch(() => undefined)));
    await Promise.all(proxies.map((p) => p.close()));
    const admin = new Redis(REDIS_URL);
    await deleteByPrefix(admin, prefix);
    await admin.quit();
  });

  it('rejects operationTimeoutMs that is not a positive integer', () => {
    for (const bad of [0, -1, 1.5, '5' as unknown as number]) {
      assert.throws(() => new RedisStorage({ url: REDIS_URL, operationTimeoutMs: bad }), { code: 'ERR_INVALID_OPTION', message: /operationTimeoutMs/ });
    }
  });

  it('a black-holed connection: store, load, list and lock fail with ERR_STORAGE within the bound', { timeout: 60_000 }, async () => {
    const { proxy, storage } = await behindProxy();
    await storage.store('a/b', Buffer.from('before'));
    proxy.blackhole();
    await failsWithinBound(storage.store('a/b', Buffer.from('after')));
    await failsWithinBound(storage.load('a/b'));
    await failsWithinBound(storage.list('a', true));
    await failsWithinBound(storage.tryLock('name'));
    proxy.resume();
    // Our client reconnected after the timeout: the storage works again once the network does.
    for (let i = 0; i < 100; i++) {
      try {
        await storage.store('a/c', Buffer.from('again'));
        assert.equal((await storage.load('a/c')).toString(), 'again');
        break;
      } catch (error) {
        if (i === 99) throw error;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
  });

  it('the server side cut: calls fail with ERR_STORAGE within the bound, not after the reconnect retries', { timeout: 60_000 }, async () => {
    const { proxy, storage } = await behindProxy();
    await storage.store('a/b', Buffer.from('x'));
    await proxy.cut();
    await failsWithinBound(storage.store('a/b', Buffer.from('y')));
    await failsWithinBound(storage.load('a/b'));
  });

  it('a forced renewal over a black-holed Redis fails with ERR_STORAGE and gives back its lock and order slot', { timeout: 120_000 }, async () => {
    const { proxy, storage } = await behindProxy();
    const keeper = new CertKeeper({ storage, issuers: [{ type: 'internal' }], logger: silentLogger(), challenges: { http01: false, tlsAlpn01: { listener: false } } });
    try {
      const name = 'redis-timeout.example.test';
      await keeper.manageSync([name]);
      const served = keeper.status(name).serialNumber;
      proxy.blackhole();
      // Lock, storage check, store and the failure record each wait at most one timeout.
      await assert.rejects(beforeDeadline(keeper.renew(name, { force: true }), 4 * BOUND_MS, 'the renewal'), { code: 'ERR_STORAGE' });
      assert.equal(keeper.orderStats().inFlight, 0, 'the order slot was given back');
      assert.equal(keeper.status(name).serialNumber, served, 'the served certificate is kept');
      proxy.resume();
      // The lock is free again (released, or its 1 s lease expired): a new forced renewal goes through.
      let renewed: string | undefined;
      for (let i = 0; i < 20 && renewed === undefined; i++) {
        try {
          renewed = (await keeper.renew(name, { force: true })).serialNumber;
        } catch {
          await new Promise((resolve) => setTimeout(resolve, 250));
        }
      }
      assert.ok(renewed && renewed !== served, 'renewed once Redis answers again');
    } finally {
      await keeper.close();
    }
  });
});
