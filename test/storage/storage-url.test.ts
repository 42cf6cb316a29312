/**
 * storageFromUrl(): each scheme opens the backend it names, against the real
 * Redis and PostgreSQL, with the URL's own parameters (prefix, schema, table)
 * applied; a missing adapter package is a typed error naming what to install;
 * credentials never reach a message.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import pg from 'pg';
// The package as installed (dist/), so the adapters it imports share its error classes.
import { FileStorage, StorageAdapterMissingError, parseStorageUrl, redactStorageUrl, storageFromUrl, type Storage } from 'certkeeper';
import { POSTGRES_URL, postgresSkipReason } from '../../storage-adapters/postgres/test/server.js';
import { REDIS_URL, deleteByPrefix, redisSkipReason } from '../../storage-adapters/redis/test/server.js';
import { etcdSkipReason, startEtcd, type EtcdServer } from '../../storage-adapters/etcd/test/server.js';

const runId = randomBytes(4).toString('hex');

async function roundTrip(storage: Storage): Promise<void> {
  await storage.store('url-test/value', Buffer.from('hello'));
  assert.equal((await storage.load('url-test/value')).toString(), 'hello');
  await storage.lock('url_test_lock');
  await storage.unlock('url_test_lock');
}

describe('storageFromUrl: files', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'certkeeper-url-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('a path, file:///absolute and file:relative all open FileStorage at that directory', async () => {
    for (const [url, root] of [
      [join(dir, 'plain'), join(dir, 'plain')],
      [pathToFileURL(join(dir, 'abs dir')).href, join(dir, 'abs dir')],
      ['file:rel/store', join(dir, 'rel', 'store')],
      ['./dot', join(dir, 'dot')],
    ] as const) {
      const storage = await storageFromUrl(url, { cwd: dir });
      try {
        assert.ok(storage instanceof FileStorage, url);
        assert.equal(storage.root, root, url);
        await roundTrip(storage);
      } finally {
        await storage.close?.();
      }
    }
  });

  test('requireExisting refuses a directory that does not exist, and a file, with ERR_INVALID_OPTION', async () => {
    await assert.rejects(storageFromUrl(join(dir, 'missing'), { requireExisting: true }), (error: Error & { code?: string }) => {
      assert.equal(error.code, 'ERR_INVALID_OPTION');
      assert.match(error.message, /storage directory .*missing does not exist/);
      return true;
    });
    await writeFile(join(dir, 'a-file'), 'x');
    await assert.rejects(storageFromUrl(join(dir, 'a-file'), { requireExisting: true }), /is not a directory/);
    await mkdir(join(dir, 'present'));
    const storage = await storageFromUrl(join(dir, 'present'), { requireExisting: true });
    await storage.close?.();
  });
});

describe('storageFromUrl: parsing and redaction', () => {
  test('an unknown scheme is ERR_INVALID_OPTION listing the accepted ones', () => {
    assert.throws(
      () => parseStorageUrl('s3://bucket/certs'),
      (error: Error & { code?: string }) => {
        assert.equal(error.code, 'ERR_INVALID_OPTION');
        for (const form of ['file:', 'redis://', 'rediss://', 'postgres://', 'postgresql://', 'etcd://']) assert.ok(error.message.includes(form), form);
        return true;
      },
    );
  });

  test('certkeeper parameters are taken out of the URL the client library gets', () => {
    assert.deepEqual(parseStorageUrl('redis://:pw@h:6380/3?prefix=ck:a:&family=6'), {
      kind: 'adapter',
      scheme: 'redis',
      packageName: '@certkeeper/storage-redis',
      exportName: 'RedisStorage',
      options: { url: 'redis://:pw@h:6380/3?family=6', prefix: 'ck:a:' },
    });
    const postgres = parseStorageUrl('postgresql://u@h/db?sslmode=require&schema=s&table=t&lockTable=l');
    assert.equal(postgres.kind === 'adapter' && postgres.packageName, '@certkeeper/storage-postgres');
    assert.deepEqual(postgres.kind === 'adapter' && postgres.options, { connectionString: 'postgresql://u@h/db?sslmode=require', schema: 's', tableName: 't', lockTable: 'l' });
    const etcd = parseStorageUrl('etcd://root:pw@10.0.0.1:2379,10.0.0.2:2379/certkeeper/');
    assert.deepEqual(etcd.kind === 'adapter' && etcd.options, {
      endpoints: ['http://10.0.0.1:2379', 'http://10.0.0.2:2379'],
      prefix: 'certkeeper/',
      etcdOptions: { auth: { username: 'root', password: 'pw' } },
    });
  });

  test('passwords in the user-info and in secret-named parameters are redacted; user names and paths stay', () => {
    assert.equal(redactStorageUrl('redis://:s3cret-pw@h:6379/0'), 'redis://:[redacted]@h:6379/0');
    assert.equal(redactStorageUrl('rediss://app:p@ss@h:6379'), 'rediss://app:[redacted]@h:6379');
    assert.equal(redactStorageUrl('postgres://app@h/db?password=s3cret&schema=x'), 'postgres://app@h/db?password=[redacted]&schema=x');
    assert.equal(redactStorageUrl('etcd://root:s3cret@h:2379/p'), 'etcd://root:[redacted]@h:2379/p');
    assert.equal(redactStorageUrl('/var/lib/certkeeper'), '/var/lib/certkeeper');
  });

  test('a malformed URL with a password is refused without the password in the message', () => {
    for (const url of ['redis://u:topsecret1@[::1', 'postgres://u:topsecret1@h:99999/db', 'etcd://u:topsecret1@nohostport']) {
      assert.throws(
        () => parseStorageUrl(url),
        (error: Error & { code?: string }) => {
          assert.equal(error.code, 'ERR_INVALID_OPTION', url);
          assert.ok(!error.message.includes('topsecret1'), error.message);
          return true;
        },
      );
    }
  });
});

describe('storageFromUrl: a missing adapter package', () => {
  test('is ERR_STORAGE_ADAPTER_MISSING naming the npm install command (the resolution failure of a real import)', async () => {
    // The importer resolves a package that exists nowhere: the error Node gives for an adapter not installed.
    const importPackage = (name: string): Promise<unknown> => import(`${name}-not-installed-${runId}`);
    for (const [url, pkg] of [
      ['redis://127.0.0.1:6379', '@certkeeper/storage-redis'],
      ['postgres://postgres@127.0.0.1/test', '@certkeeper/storage-postgres'],
      ['etcd://127.0.0.1:2379', '@certkeeper/storage-etcd'],
    ] as const) {
      await assert.rejects(storageFromUrl(url, { importPackage }), (error: Error & { code?: string; packageName?: string }) => {
        assert.ok(error instanceof StorageAdapterMissingError, String(error));
        assert.equal(error.code, 'ERR_STORAGE_ADAPTER_MISSING');
        assert.equal(error.packageName, pkg);
        assert.ok(error.message.includes(`npm install ${pkg}`), error.message);
        return true;
      });
    }
  });

});

describe('storageFromUrl: Redis', async () => {
  const skip = await redisSkipReason();
  const prefix = `ck-url-test:${runId}:`;
  let admin: Redis;
  before(() => {
    admin = new Redis(REDIS_URL);
  });
  after(async () => {
    await deleteByPrefix(admin, prefix);
    await admin.quit();
  });

  test('redis://host:port/db?prefix= stores under that prefix, in that database', { skip }, async () => {
    const url = new URL(REDIS_URL);
    url.pathname = '/0';
    url.searchParams.set('prefix', prefix);
    const storage = await storageFromUrl(url.href, { adapterOptions: { lockPollMs: 5 } });
    try {
      assert.equal(storage.constructor.name, 'RedisStorage');
      await roundTrip(storage);
      assert.equal(await admin.hget(`${prefix}v:url-test/value`, 'v'), 'hello');
    } finally {
      await storage.close?.();
    }
  });
});

describe('storageFromUrl: PostgreSQL', async () => {
  const skip = await postgresSkipReason();
  const schema = `ck_url_${runId}`;
  after(async () => {
    if (skip) return;
    const admin = new pg.Client({ connectionString: POSTGRES_URL });
    await admin.connect();
    await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await admin.end();
  });

  test('postgres://...?schema=&table= stores in that schema and table (postgresql:// too)', { skip }, async () => {
    for (const scheme of ['postgres:', 'postgresql:']) {
      const url = new URL(POSTGRES_URL);
      url.protocol = scheme;
      url.searchParams.set('schema', schema);
      url.searchParams.set('table', `values_${scheme.length}`);
      const storage = await storageFromUrl(url.href);
      try {
        assert.equal(storage.constructor.name, 'PostgresStorage');
        await roundTrip(storage);
      } finally {
        await storage.close?.();
      }
      const admin = new pg.Client({ connectionString: POSTGRES_URL });
      await admin.connect();
      try {
        const rows = await admin.query(`SELECT convert_from(value, 'UTF8') AS v FROM "${schema}"."values_${scheme.length}" WHERE key = 'url-test/value'`);
        assert.equal(rows.rows[0]?.v, 'hello', scheme);
      } finally {
        await admin.end();
      }
    }
  });
});

describe('storageFromUrl: etcd', () => {
  const skip = etcdSkipReason();
  let etcd: EtcdServer | undefined;
  before(async () => {
    if (!skip) etcd = await startEtcd();
  });
  after(async () => {
    await etcd?.close();
  });

  test('etcd://host:port/prefix opens @certkeeper/storage-etcd against a real etcd, under that prefix', { skip }, async () => {
    const hostPort = new URL(etcd!.endpoint).host;
    const storage = await storageFromUrl(`etcd://${hostPort}/ck-url-${runId}/`);
    try {
      assert.equal(storage.constructor.name, 'EtcdStorage');
      await roundTrip(storage);
      // The prefix is the path of the URL: another prefix does not see the key.
      const other = await storageFromUrl(`etcd://${hostPort}/ck-url-other-${runId}/`);
      try {
        assert.equal(await other.exists('url-test/value'), false);
      } finally {
        await other.close?.();
      }
    } finally {
      await storage.close?.();
    }
  });
});
