import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Etcd3 } from 'etcd3';
import { ClosedError, InvalidOptionError, LockLostError, StorageNotFoundError, type Storage } from 'certkeeper/storage';
import { runStorageConformance } from 'certkeeper/testing';
import { EtcdStorage, type EtcdStorageOptions } from '@certkeeper/storage-etcd';
import { etcdSkipReason, startEtcd, type EtcdServer } from './server.js';

const skip = etcdSkipReason();
const STALE_LOCK_MS = 1_000;

// One etcd for the whole file; the conformance cases need it while node:test collects them, so start it up front.
const etcd: EtcdServer | undefined = skip ? undefined : await startEtcd();
after(async () => {
  await etcd?.close();
});

if (skip || etcd === undefined) {
  it('storage conformance: etcd', { skip: skip || 'no etcd' }, () => {});
} else {
  const encryptionKey = randomBytes(32);
  for (const encrypted of [false, true]) {
    runStorageConformance({
      name: encrypted ? 'etcd (encrypted private keys)' : 'etcd',
      createStorage: async () =>
        new EtcdStorage({
          endpoints: etcd.endpoint,
          prefix: `conformance-${encrypted}/`,
          lockTtlMs: STALE_LOCK_MS,
          lockPollMs: 25,
          ...(encrypted ? { encryptionKey } : {}),
        }),
      staleLockMs: STALE_LOCK_MS,
      abandonLock: (storage: Storage, lockName: string) => (storage as EtcdStorage).abandonLock(lockName),
    });
  }
}

describe('EtcdStorage', { skip }, () => {
  let admin: Etcd3;
  const opened: EtcdStorage[] = [];

  function open(options: EtcdStorageOptions = {}): EtcdStorage {
    const storage = new EtcdStorage({ endpoints: etcd!.endpoint, lockTtlMs: STALE_LOCK_MS, lockPollMs: 25, ...options });
    opened.push(storage);
    return storage;
  }
  function sharedPair(options: EtcdStorageOptions = {}): [EtcdStorage, EtcdStorage] {
    const prefix = `t-${randomUUID()}/`;
    return [open({ prefix, ...options }), open({ prefix, ...options })];
  }
  const raw = async (key: string) => (await admin.get(key).exec()).kvs[0];

  before(() => {
    admin = new Etcd3({ hosts: etcd!.endpoint });
  });
  after(async () => {
    await Promise.all(opened.map((s) => s.close()));
    admin.close();
  });

  describe('layout and values', () => {
    it('keeps a value and its modification time in two keys under the prefix, and deletes folders', async () => {
      const prefix = `layout-${randomUUID()}/`;
      const s = open({ prefix });
      await s.store('certs/a/a.crt', Buffer.from('A'));
      await s.store('certs/a-b', Buffer.from('B'));
      assert.equal((await raw(`${prefix}v/certs/a/a.crt`))?.value.toString(), 'A');
      const modified = Number((await raw(`${prefix}m/certs/a/a.crt`))?.value.toString());
      assert.equal((await s.stat('certs/a/a.crt')).modified.getTime(), modified);
      assert.deepEqual(await s.list('certs', false), ['certs/a', 'certs/a-b']);
      await s.delete('certs/a');
      assert.equal(await raw(`${prefix}v/certs/a/a.crt`), undefined);
      assert.equal(await raw(`${prefix}m/certs/a/a.crt`), undefined);
      assert.equal((await s.load('certs/a-b')).toString(), 'B', 'a sibling whose name starts the same is kept');
    });

    it('lists folders larger than one page, skipping through sub-folders', async () => {
      const s = open({ prefix: `big-${randomUUID()}/` });
      // Just over a page (1,000) in "big/a" and directly under "big"; written 50 at a time, each a transaction etcd syncs to disk.
      const names = Array.from({ length: 1010 }, (_, i) => `big/n${String(i).padStart(4, '0')}`);
      const keys = names.flatMap((name) => [name, name.replace('big/', 'big/a/')]);
      for (let i = 0; i < keys.length; i += 50) await Promise.all(keys.slice(i, i + 50).map((key) => s.store(key, Buffer.from('x'))));
      assert.deepEqual(await s.list('big', false), ['big/a', ...names].sort());
      assert.equal((await s.list('big', true)).length, 2021);
      assert.deepEqual(await s.list('', false), ['big']);
    });
  });

  describe('locks on leases', () => {
    it('attaches the lock key to a lease that is kept alive while held and revoked on unlock', async () => {
      const prefix = `lease-${randomUUID()}/`;
      const [a, b] = sharedPair({ prefix, lockTtlMs: 2_000, lockRefreshMs: 200 });
      await a.lock('kept');
      const kv = await raw(`${prefix}lock/kept`);
      assert.ok(kv && kv.lease !== '0', 'the lock key carries a lease');
      const ttl = async () => Number((await admin.leaseClient.leaseTimeToLive({ ID: kv.lease })).TTL);
      // Past more than a full lease the key is still there: only keep-alives can do that.
      await new Promise((resolve) => setTimeout(resolve, 2_500));
      assert.ok((await ttl()) > 0, 'the lease is alive');
      await a.assertLockHeld('kept');
      assert.equal(await b.tryLock('kept'), false);
      await a.unlock('kept');
      assert.equal(await ttl(), -1, 'unlock revoked the lease');
      assert.equal(await raw(`${prefix}lock/kept`), undefined);
      assert.equal(await b.tryLock('kept'), true);
      await b.unlock('kept');
    });

    it('gives each grant of a lock a greater create revision (the fencing token)', async () => {
      const prefix = `tokens-${randomUUID()}/`;
      const [a, b] = sharedPair({ prefix });
      const revisions: number[] = [];
      for (const s of [a, b, a]) {
        await s.lock('grant');
        revisions.push(Number((await raw(`${prefix}lock/grant`))?.create_revision));
        await s.unlock('grant');
      }
      assert.deepEqual([...revisions].sort((x, y) => x - y), revisions);
      assert.equal(new Set(revisions).size, 3);
    });
  });

  describe('fenced writes', () => {
    it('applies puts and deletes in one transaction while the lock is held', async () => {
      const s = open({ prefix: `fenced-${randomUUID()}/` });
      await s.store('set/old.crt', Buffer.from('old'));
      await s.store('set/sub/x', Buffer.from('x'));
      await s.lock('set');
      // Replacing a folder: etcd refuses overlapping puts and deletes in one transaction, so the adapter cuts the ranges.
      await s.writeFenced('set', [{ key: 'set', delete: true }, { key: 'set/new.crt', value: Buffer.from('new') }, { key: 'set/new.key', value: Buffer.from('k') }]);
      assert.deepEqual(await s.list('set', true), ['set/new.crt', 'set/new.key']);
      await s.writeFenced('set', [{ key: 'set/a', value: Buffer.from('1') }, { key: 'set/a', delete: true }, { key: 'other', value: Buffer.from('2') }]);
      await assert.rejects(s.load('set/a'), StorageNotFoundError);
      assert.equal((await s.load('other')).toString(), '2');
      await s.unlock('set');
      await assert.rejects(s.writeFenced('set', [{ key: 'set/late', value: Buffer.from('late') }]), (e: unknown) => e instanceof LockLostError && e.code === 'ERR_LOCK_LOST');
      assert.equal(await s.exists('set/late'), false);
    });

    it('refuses a write under a lock this instance never held, writing nothing', async () => {
      const [a, b] = sharedPair();
      await a.lock('theirs');
      await assert.rejects(b.writeFenced('theirs', [{ key: 'x', value: Buffer.from('b') }]), { code: 'ERR_LOCK_LOST' });
      assert.equal(await a.exists('x'), false);
      await a.unlock('theirs');
    });

    it('frozen holder: checked its lease, paused while a peer took the lock over and wrote, then its write is refused', async () => {
      const prefix = `frozen-${randomUUID()}/`;
      const [holder, peer] = sharedPair({ prefix, lockTtlMs: 5_000 });
      await holder.lock('cert');
      await holder.assertLockHeld('cert');
      // --- the holder is frozen here, between its check and its write. Its lease ends during the pause (expired,
      // as etcd sees it; revoking it is the same, without waiting), and its own refresh timer never ran.
      await holder.abandonLock('cert');
      const leaseId = (await raw(`${prefix}lock/cert`))!.lease;
      await admin.leaseClient.leaseRevoke({ ID: leaseId });
      await peer.lock('cert', { timeoutMs: 10_000 });
      const peerSet = [
        { key: 'certificates/ca/n/n.crt', value: Buffer.from('peer cert') },
        { key: 'certificates/ca/n/n.key', value: Buffer.from('peer key') },
        { key: 'certificates/ca/n/n.json', value: Buffer.from('{"peer":true}') },
      ];
      await peer.writeFenced('cert', peerSet);
      // --- the holder resumes: less than its TTL passed by its own clock, so only etcd's compare can stop it.
      await assert.rejects(
        holder.writeFenced('cert', [
          { key: 'certificates/ca/n/n.crt', value: Buffer.from('stale cert') },
          { key: 'certificates/ca/n/n.key', value: Buffer.from('stale key') },
        ]),
        (e: unknown) => e instanceof LockLostError && e.code === 'ERR_LOCK_LOST' && e.lockName === 'cert',
      );
      for (const { key, value } of peerSet) assert.deepEqual(await peer.load(key), value, `${key} is the peer's`);
      assert.deepEqual(await peer.list('certificates/ca/n', false), peerSet.map((w) => w.key).sort());
      await peer.assertLockHeld('cert');
      await peer.unlock('cert');
    });

    it('a holder frozen past its lease (the peer waits the TTL out) is refused too', { timeout: 30_000 }, async () => {
      const [holder, peer] = sharedPair({ lockTtlMs: 1_000 });
      await holder.lock('slow');
      await holder.assertLockHeld('slow');
      await holder.abandonLock('slow');
      await peer.lock('slow', { timeoutMs: 20_000 });
      await peer.writeFenced('slow', [{ key: 'v', value: Buffer.from('peer') }]);
      await assert.rejects(holder.writeFenced('slow', [{ key: 'v', value: Buffer.from('stale') }]), { code: 'ERR_LOCK_LOST' });
      await assert.rejects(holder.assertLockHeld('slow'), { code: 'ERR_LOCK_LOST' });
      assert.equal((await peer.load('v')).toString(), 'peer');
      await peer.unlock('slow');
    });
  });

  describe('clients and options', () => {
    it('does not close a client it was given', async () => {
      const client = new Etcd3({ hosts: etcd!.endpoint });
      const s = new EtcdStorage({ client, prefix: `given-${randomUUID()}/` });
      await s.store('k', Buffer.from('v'));
      await s.close();
      await s.close();
      await assert.rejects(s.load('k'), ClosedError);
      assert.equal(Number((await client.get('nothing').exec()).count), 0, 'the client still works');
      client.close();
    });

    it('validates its options', () => {
      const invalid = (options: EtcdStorageOptions, option: string) =>
        assert.throws(() => new EtcdStorage(options), (e: unknown) => e instanceof InvalidOptionError && e.option === option);
      invalid({ prefix: '' }, 'prefix');
      invalid({ endpoints: 'redis://x:1' }, 'endpoints');
      invalid({ endpoints: [] }, 'endpoints');
      invalid({ lockTtlMs: 500 }, 'lockTtlMs');
      invalid({ lockTtlMs: 2_000, lockRefreshMs: 2_000 }, 'lockRefreshMs');
      invalid({ operationTimeoutMs: 0 }, 'operationTimeoutMs');
      invalid({ client: {} as Etcd3 }, 'client');
      invalid({ encryptionKey: 'short' }, 'encryptionKey');
    });
  });
});
