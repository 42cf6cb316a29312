/**
 * Every PostgreSQL call is bounded (issue 14, defect 11): behind a proxy that
 * stops forwarding, or with the server side cut, operations fail with
 * ERR_STORAGE within a bound, the pool's client is destroyed rather than
 * handed out again, and a keeper renewing over it gives back the name's lock
 * and its order slot. Bounds are 10x the configured timeout: they only prove
 * the timeout fired (before, a renewal was still pending after 25 s).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import pg from 'pg';
import { CertKeeper } from '../../../src/manager/keeper.js';
import { startBlackholeProxy, type BlackholeProxy } from '../../../test/helpers/blackhole-proxy.js';
import { beforeDeadline } from '../../../test/helpers/deadline.js';
import { silentLogger } from '../../../test/helpers/logging.js';
import { PostgresStorage } from '../src/index.js';
import { POSTGRES_URL, postgresSkipReason } from './server.js';

const skip = await postgresSkipReason();
const TIMEOUT_MS = 300;
const BOUND_MS = 10 * TIMEOUT_MS;
const schemaPrefix = `ck_timeout_${randomBytes(4).toString('hex')}_`;
const target = new URL(POSTGRES_URL);

async function failsWithinBound(what: Promise<unknown>): Promise<void> {
  await assert.rejects(beforeDeadline(what, BOUND_MS, 'the storage call'), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'ERR_STORAGE', err.message);
    assert.ok(err.cause !== undefined, 'the cause is kept');
    return true;
  });
}

describe('PostgresStorage operation timeouts', { skip }, () => {
  const proxies: BlackholeProxy[] = [];
  const storages: PostgresStorage[] = [];
  let n = 0;

  async function behindProxy(): Promise<{ proxy: BlackholeProxy; storage: PostgresStorage; pool: pg.Pool }> {
    const proxy = await startBlackholeProxy(Number(target.port || 5432), target.hostname);
    proxies.push(proxy);
    const url = new URL(POSTGRES_URL);
    url.hostname = '127.0.0.1';
    url.port = String(proxy.port);
    const pool = new pg.Pool({ connectionString: url.toString(), max: 4 });
    pool.on('error', () => undefined);
    const storage = new PostgresStorage({ pool, schema: `${schemaPrefix}${n++}`, operationTimeoutMs: TIMEOUT_MS, lockTtlMs: 1_000, lockPollMs: 25, logger: silentLogger() });
    storages.push(storage);
    return { proxy, storage, pool };
  }

  after(async () => {
    await Promise.all(storages.map((s) => s.close().catch(() => undefined)));
    await Promise.all(proxies.map((p) => p.close()));
    const admin = new pg.Client({ connectionString: POSTGRES_URL });
    await admin.connect();
    try {
      const { rows } = await admin.query<{ nspname: string }>('SELECT nspname FROM pg_namespace WHERE starts_with(nspname, $1)', [schemaPrefix]);
      for (const { nspname } of rows) await admin.query(`DROP SCHEMA "${nspname}" CASCADE`);
    } finally {
      await admin.end();
    }
  });

  it('rejects operationTimeoutMs that is not a positive integer', () => {
    for (const bad of [0, -1, 1.5, '5' as unknown as number]) {
      assert.throws(() => new PostgresStorage({ connectionString: POSTGRES_URL, operationTimeoutMs: bad }), { code: 'ERR_INVALID_OPTION', message: /operationTimeoutMs/ });
    }
  });

  it('a black-holed connection: store, load and lock fail with ERR_STORAGE within the bound; stuck clients are destroyed', { timeout: 60_000 }, async () => {
    const { proxy, storage, pool } = await behindProxy();
    await storage.store('a/b', Buffer.from('before'));
    proxy.blackhole();
    await failsWithinBound(storage.store('a/b', Buffer.from('after')));
    await failsWithinBound(storage.load('a/b'));
    await failsWithinBound(storage.tryLock('name'));
    // No client stuck on a dead query is handed out again (pending connects are not counted as idle).
    assert.equal(pool.idleCount, 0, 'no stuck client went back to the pool');
    proxy.resume();
    let loaded: string | undefined;
    for (let i = 0; i < 40 && loaded === undefined; i++) {
      try {
        loaded = (await storage.load('a/b')).toString();
      } catch {
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
    assert.equal(loaded, 'before', 'fresh connections work once the network does');
  });

  it('the server side cut: calls fail with ERR_STORAGE within the bound', { timeout: 60_000 }, async () => {
    const { proxy, storage } = await behindProxy();
    await storage.store('a/b', Buffer.from('x'));
    await proxy.cut();
    await failsWithinBound(storage.store('a/b', Buffer.from('y')));
    await failsWithinBound(storage.load('a/b'));
  });

  it('a forced renewal over a black-holed PostgreSQL fails with ERR_STORAGE and gives back its lock and order slot', { timeout: 120_000 }, async () => {
    const { proxy, storage } = await behindProxy();
    const keeper = new CertKeeper({ storage, issuers: [{ type: 'internal' }], logger: silentLogger(), challenges: { http01: false, tlsAlpn01: { listener: false } } });
    try {
      const name = 'pg-timeout.example.test';
      await keeper.manageSync([name]);
      const served = keeper.status(name).serialNumber;
      proxy.blackhole();
      await assert.rejects(beforeDeadline(keeper.renew(name, { force: true }), 4 * BOUND_MS, 'the renewal'), { code: 'ERR_STORAGE' });
      assert.equal(keeper.orderStats().inFlight, 0, 'the order slot was given back');
      assert.equal(keeper.status(name).serialNumber, served, 'the served certificate is kept');
      proxy.resume();
      let renewed: string | undefined;
      for (let i = 0; i < 20 && renewed === undefined; i++) {
        try {
          renewed = (await keeper.renew(name, { force: true })).serialNumber;
        } catch {
          await new Promise((resolve) => setTimeout(resolve, 250));
        }
      }
      assert.ok(renewed && renewed !== served, 'renewed once PostgreSQL answers again: the lock was not kept');
    } finally {
      await keeper.close();
    }
  });
});
