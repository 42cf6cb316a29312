import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { ClosedError, InvalidOptionError, LockLostError, StorageError, StorageNotFoundError } from 'certkeeper/storage';
import type { Storage } from 'certkeeper/storage';
import { runStorageConformance } from 'certkeeper/testing';
import { PostgresStorage, type PostgresStorageOptions } from '@certkeeper/storage-postgres';
import { POSTGRES_URL, postgresSkipReason } from './server.js';

const skip = await postgresSkipReason();
const runId = randomBytes(5).toString('hex');
const STALE_LOCK_MS = 500;
/** Every schema this run creates starts with this, so cleanup drops exactly ours. */
const schemaPrefix = `ck_test_${runId}_`;

async function dropSchemas(): Promise<void> {
  const admin = new pg.Client({ connectionString: POSTGRES_URL });
  await admin.connect();
  try {
    const { rows } = await admin.query<{ nspname: string }>(
      `SELECT nspname FROM pg_namespace WHERE starts_with(nspname, $1)`,
      [schemaPrefix],
    );
    for (const { nspname } of rows) await admin.query(`DROP SCHEMA "${nspname}" CASCADE`);
    await admin.query(`DROP TABLE IF EXISTS "${schemaPrefix}data", "${schemaPrefix}locks"`);
  } finally {
    await admin.end();
  }
}

if (skip) {
  it('storage conformance: postgres', { skip }, () => {});
} else {
  runStorageConformance({
    name: 'postgres',
    createStorage: async () =>
      new PostgresStorage({ connectionString: POSTGRES_URL, schema: `${schemaPrefix}conformance`, lockTtlMs: STALE_LOCK_MS, lockPollMs: 25 }),
    staleLockMs: STALE_LOCK_MS,
    abandonLock: (storage: Storage, lockName: string) => (storage as PostgresStorage).abandonLock(lockName),
  });
}

describe('PostgresStorage', { skip }, () => {
  let admin: pg.Pool;
  const opened: PostgresStorage[] = [];
  let counter = 0;

  /** A storage in a fresh schema (or the given one, to share it), closed after the suite. */
  function freshSchema(): string {
    return `${schemaPrefix}${counter++}`;
  }
  function open(options: PostgresStorageOptions = {}): PostgresStorage {
    const schema = 'schema' in options ? options.schema : freshSchema();
    const storage = new PostgresStorage({ connectionString: POSTGRES_URL, ...options, schema });
    opened.push(storage);
    return storage;
  }
  function sharedPair(schema: string, options: PostgresStorageOptions = {}): [PostgresStorage, PostgresStorage] {
    return [open({ ...options, schema }), open({ ...options, schema })];
  }

  before(() => {
    admin = new pg.Pool({ connectionString: POSTGRES_URL, max: 2 });
  });
  after(async () => {
    await Promise.all(opened.map((s) => s.close()));
    await admin.end();
  });

  describe('values', () => {
    it('creates its tables once, even when several instances start at the same moment', async () => {
      const schema = freshSchema();
      const fleet = Array.from({ length: 5 }, () => open({ schema }));
      await Promise.all(fleet.map((s, i) => s.store(`k${i}`, Buffer.from(String(i)))));
      assert.deepEqual(await fleet[0]!.list('', false), ['k0', 'k1', 'k2', 'k3', 'k4']);
      const { rows } = await admin.query(
        `SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY table_name`,
        [schema],
      );
      assert.deepEqual(rows.map((r) => r.table_name), ['certkeeper_locks', 'certkeeper_storage']);
    });

    it('uses the search path and custom table names when no schema is given', async () => {
      const s = open({ schema: undefined, tableName: `${schemaPrefix}data`, lockTable: `${schemaPrefix}locks` });
      await s.store('x', Buffer.from('1'));
      const { rows } = await admin.query(`SELECT key FROM "${schemaPrefix}data"`);
      assert.deepEqual(rows, [{ key: 'x' }]);
    });

    it('treats quotes, percent and underscore in keys literally', async () => {
      const s = open();
      const keys = ["it's/a", 'a%b/x', 'a_b/y', 'axb/z', 'a!b/w', 'q"uote/v', "'; DROP TABLE certkeeper_storage; --/k"];
      for (const key of keys) await s.store(key, Buffer.from(key));
      for (const key of keys) assert.equal((await s.load(key)).toString(), key);
      assert.deepEqual(await s.list('a%b', true), ['a%b/x']);
      assert.deepEqual(await s.list('a_b', false), ['a_b/y']);
      await assert.rejects(s.list('a%', false), StorageNotFoundError);
      assert.equal(await s.exists('a_'), false);
      await s.delete('a_b');
      assert.equal(await s.exists('axb/z'), true, 'deleting a_b must not match axb');
      await s.delete('a%b');
      assert.equal(await s.exists('a!b/w'), true);
      assert.deepEqual(await s.list('', false), ["'; DROP TABLE certkeeper_storage; --", 'a!b', 'axb', "it's", 'q"uote']);
    });

    it('reports stat of a folder with its newest modification time', async () => {
      const s = open();
      await s.store('d/one', Buffer.from('1'));
      await s.store('d/two', Buffer.from('22'));
      const newest = await s.stat('d/two');
      assert.equal(newest.size, 2);
      const dir = await s.stat('d');
      assert.equal(dir.isTerminal, false);
      assert.equal(dir.modified.getTime(), newest.modified.getTime());
    });

    it('validates its options, refusing identifiers that would need quoting', () => {
      assert.throws(() => new PostgresStorage({ tableName: 'x"; DROP TABLE y; --' }), (e: unknown) => e instanceof InvalidOptionError && e.option === 'tableName');
      assert.throws(() => new PostgresStorage({ schema: 'a.b' }), (e: unknown) => e instanceof InvalidOptionError && e.option === 'schema');
      assert.throws(() => new PostgresStorage({ tableName: 'same', lockTable: 'same' }), InvalidOptionError);
      assert.throws(() => new PostgresStorage({ lockRefreshMs: 0 }), InvalidOptionError);
      assert.throws(() => new PostgresStorage({ pool: {} as pg.Pool }), InvalidOptionError);
    });
  });

  describe('locks', () => {
    it('stores a lease with an expiry and deletes it on unlock', async () => {
      const schema = freshSchema();
      const s = open({ schema, lockTtlMs: 5_000 });
      await s.lock('ttl');
      const { rows } = await admin.query<{ remaining: number }>(
        `SELECT extract(epoch FROM expires_at - clock_timestamp()) * 1000 AS remaining FROM "${schema}".certkeeper_locks WHERE name = 'ttl'`,
      );
      const remaining = Number(rows[0]?.remaining);
      assert.ok(remaining > 0 && remaining <= 5_000, `remaining ${remaining}`);
      await s.unlock('ttl');
      const after = await admin.query(`SELECT 1 FROM "${schema}".certkeeper_locks WHERE name = 'ttl'`);
      assert.equal(after.rowCount, 0);
    });

    it('detects a lost lease after expiry and takeover, and the late unlock leaves the new holder alone', async () => {
      const [a, b] = sharedPair(freshSchema(), { lockTtlMs: 300, lockPollMs: 20 });
      await a.lock('job');
      await a.abandonLock('job'); // as if paused: no more refreshes
      await b.lock('job', { timeoutMs: 10_000 });
      await assert.rejects(a.assertLockHeld('job'), (error: unknown) => error instanceof LockLostError && error.lockName === 'job');
      await a.unlock('job');
      await b.assertLockHeld('job');
      assert.equal(await a.tryLock('job'), false);
      await b.unlock('job');
    });

    it('keeps a held lease alive by refreshing it', async () => {
      const schema = freshSchema();
      const [a, b] = sharedPair(schema, { lockTtlMs: 5_000, lockRefreshMs: 50 });
      await a.lock('kept');
      // Shorten the lease behind its back; only a refresh can lengthen it again.
      await admin.query(`UPDATE "${schema}".certkeeper_locks SET expires_at = clock_timestamp() + interval '2 seconds' WHERE name = 'kept'`);
      let refreshed = false;
      for (let i = 0; i < 100 && !refreshed; i++) {
        await new Promise((r) => setTimeout(r, 50));
        const { rows } = await admin.query<{ later: boolean }>(
          `SELECT expires_at > clock_timestamp() + interval '2 seconds' AS later FROM "${schema}".certkeeper_locks WHERE name = 'kept'`,
        );
        refreshed = rows[0]?.later === true;
      }
      assert.ok(refreshed, 'the lease was never extended');
      assert.equal(await b.tryLock('kept'), false);
      await a.unlock('kept');
    });
  });

  describe('pools', () => {
    it('does not end a pool it was given, and ends one it created', async () => {
      const pool = new pg.Pool({ connectionString: POSTGRES_URL, max: 2 });
      try {
        const s = new PostgresStorage({ pool, schema: freshSchema() });
        await s.store('k', Buffer.from('v'));
        await s.close();
        await s.close();
        assert.equal((await pool.query('SELECT 1 AS one')).rows[0].one, 1);
        await assert.rejects(s.load('k'), ClosedError);
      } finally {
        await pool.end();
      }

      const applicationName = `ck_own_${runId}`;
      const own = open({ poolConfig: { application_name: applicationName } });
      await own.store('k', Buffer.from('v'));
      const count = async (): Promise<number> =>
        Number((await admin.query('SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = $1', [applicationName])).rows[0].n);
      assert.ok((await count()) > 0);
      await own.close();
      for (let i = 0; i < 50 && (await count()) > 0; i++) await new Promise((r) => setTimeout(r, 20));
      assert.equal(await count(), 0);
    });

    it('reports an unreachable server as a StorageError', async () => {
      const s = new PostgresStorage({ connectionString: 'postgres://postgres@127.0.0.1:1/test', poolConfig: { connectionTimeoutMillis: 1000 } });
      await assert.rejects(s.load('k'), StorageError);
      await s.close();
    });
  });

  describe('encryption at rest', () => {
    const pem = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();

    it('stores private keys encrypted in the table and loads them back', async () => {
      const key = randomBytes(32).toString('base64');
      const schema = freshSchema();
      const [s, sameKey] = sharedPair(schema, { encryptionKey: key });
      await s.store('acme/ca/users/me/me.key', Buffer.from(pem));
      await s.store('acme/ca/users/me/me.json', Buffer.from('{"ok":true}'));
      const { rows } = await admin.query<{ key: string; value: Buffer }>(`SELECT key, value FROM "${schema}".certkeeper_storage ORDER BY key`);
      assert.equal(rows[0]?.value.toString(), '{"ok":true}');
      assert.ok(rows[1] && !rows[1].value.toString('latin1').includes('PRIVATE KEY'));
      assert.equal((await s.load('acme/ca/users/me/me.key')).toString(), pem);

      const other = open({ schema, encryptionKey: randomBytes(32) });
      await assert.rejects(other.load('acme/ca/users/me/me.key'), (error: unknown) => {
        assert.ok(error instanceof StorageError);
        assert.match(error.message, /different encryptionKey/);
        assert.ok(!error.message.includes(key));
        return true;
      });
      assert.equal((await sameKey.load('acme/ca/users/me/me.key')).toString(), pem);
    });
  });
});

if (!skip) after(dropSchemas);
