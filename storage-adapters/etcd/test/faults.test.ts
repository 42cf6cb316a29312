/**
 * etcd going away under a fleet member (issue 17, items 3 and 4), on an etcd
 * this file starts and then stops, kills (SIGKILL), freezes (SIGSTOP) and
 * restarts on the same ports and data directory: every call fails with a typed
 * error instead of hanging (a hang fails the test by its timeout), no write
 * that was acknowledged is lost, a lease that could not be kept alive for its
 * TTL is lost (ERR_LOCK_LOST) and its holder overwrites nothing, and work
 * resumes once etcd is back.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { CertKeeper, listCertificateNames, loadCertificateSet } from 'certkeeper';
import { EtcdStorage, type EtcdStorageOptions } from '@certkeeper/storage-etcd';
import { eventually, until } from '../../../test/helpers/eventually.js';
import { silentLogger } from '../../../test/helpers/logging.js';
import { etcdSkipReason, startEtcd, type EtcdServer } from './server.js';

const skip = etcdSkipReason();
// Short enough to keep the test quick, long enough for a first connection on a busy 2-core machine.
const TIMEOUT_MS = 1_000;

function isCode(error: unknown, ...codes: string[]): boolean {
  return codes.includes((error as { code?: string }).code ?? '');
}

describe('EtcdStorage when etcd fails', { skip }, () => {
  let etcd: EtcdServer;
  const opened: EtcdStorage[] = [];

  function open(options: EtcdStorageOptions = {}): EtcdStorage {
    const storage = new EtcdStorage({ endpoints: etcd.endpoint, operationTimeoutMs: TIMEOUT_MS, lockTtlMs: 2_000, lockPollMs: 50, logger: silentLogger(), ...options });
    opened.push(storage);
    return storage;
  }
  async function up(): Promise<void> {
    if (!etcd.process.running) await etcd.process.start();
  }

  before(async () => {
    etcd = await startEtcd();
  });
  after(async () => {
    await up().catch(() => undefined);
    await Promise.all(opened.map((s) => s.close()));
    await etcd?.close();
  });

  it('a lease not kept alive past its TTL while etcd was stopped is lost: ERR_LOCK_LOST, nothing overwritten', { timeout: 60_000 }, async () => {
    const prefix = `lost-${randomUUID()}/`;
    const holder = open({ prefix });
    const peer = open({ prefix });
    await holder.lock('name');
    await holder.writeFenced('name', [{ key: 'cert', value: Buffer.from('v1') }]);
    await etcd.process.stop();
    // While etcd is away the holder cannot tell: ERR_STORAGE; once a TTL passed without a keep-alive: ERR_LOCK_LOST.
    let lost: unknown;
    for (let i = 0; i < 100 && lost === undefined; i++) {
      await holder.assertLockHeld('name').then(
        () => assert.fail('the lock cannot be confirmed while etcd is stopped'),
        (error: unknown) => {
          assert.ok(isCode(error, 'ERR_STORAGE', 'ERR_LOCK_LOST'), String(error));
          if (isCode(error, 'ERR_LOCK_LOST')) lost = error;
        },
      );
      if (lost === undefined) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.ok(lost, 'the lease was given up');
    await up();
    // etcd extends every lease when it elects a leader again, so only the holder's own deadline keeps it from writing.
    await assert.rejects(holder.assertLockHeld('name'), { code: 'ERR_LOCK_LOST' });
    await assert.rejects(holder.writeFenced('name', [{ key: 'cert', value: Buffer.from('stale') }]), { code: 'ERR_LOCK_LOST' });
    assert.equal((await eventually(() => peer.load('cert'))).toString(), 'v1');
    // The lock is free again (revoked by unlock, or expired) and the old holder's unlock does not free the new grant.
    await holder.unlock('name');
    await eventually(() => peer.lock('name', { timeoutMs: 10_000 }));
    await holder.unlock('name');
    await peer.assertLockHeld('name');
    await peer.writeFenced('name', [{ key: 'cert', value: Buffer.from('v2') }]);
    await peer.unlock('name');
  });

  it('killed (SIGKILL) with writes in flight: each write succeeds or fails with ERR_STORAGE, and none acknowledged is lost', { timeout: 60_000 }, async () => {
    const prefix = `kill-${randomUUID()}/`;
    const writer = open({ prefix, lockTtlMs: 5_000 });
    await writer.lock('w');
    // Four writers, each with one write in flight at all times, until etcd dies under them.
    const acknowledged: string[] = [];
    const failures: unknown[] = [];
    let n = 0;
    const writeUntilFailure = async (): Promise<void> => {
      // Bounded: a writer that never fails ends after 1,000 writes instead of running on.
      while (n < 1_000) {
        const key = `k${n++}`;
        const value = Buffer.from(`value of ${key}`);
        try {
          await (n % 2 === 0 ? writer.store(key, value) : writer.writeFenced('w', [{ key, value }]));
          acknowledged.push(key);
        } catch (error) {
          failures.push(error);
          return;
        }
      }
    };
    const writers = [writeUntilFailure(), writeUntilFailure(), writeUntilFailure(), writeUntilFailure()];
    await until(() => acknowledged.length >= 10 || failures.length > 0, 'ten acknowledged writes');
    assert.deepEqual(failures.map(String), [], 'etcd answers before it is killed');
    await etcd.process.kill();
    await Promise.all(writers);
    assert.equal(failures.length, 4, `every writer had a write in flight when etcd died (${acknowledged.length} acknowledged)`);
    for (const error of failures) assert.ok(isCode(error, 'ERR_STORAGE', 'ERR_LOCK_LOST'), String(error));
    await assert.rejects(writer.load('k0'), { code: 'ERR_STORAGE' });
    await assert.rejects(writer.tryLock('other'), { code: 'ERR_STORAGE' });
    await up();
    const reader = open({ prefix });
    await eventually(() => reader.load('k0'));
    for (const key of acknowledged) assert.equal((await reader.load(key)).toString(), `value of ${key}`, `acknowledged write ${key} survived`);
    // Back within the lease: the lock is still held (etcd kept the lease) or, past it, lost; never held twice.
    const held = await eventually(() => writer.assertLockHeld('w').then(() => true, (e: unknown) => (isCode(e, 'ERR_LOCK_LOST') ? false : Promise.reject(e))));
    if (held) assert.equal(await reader.tryLock('w'), false, 'a lock still held is not granted twice');
    await eventually(() => writer.unlock('w'));
    await reader.lock('w', { timeoutMs: 10_000 });
    await reader.unlock('w');
    await eventually(() => reader.store('after', Buffer.from('restart')));
  });

  it('frozen (SIGSTOP): calls fail with ERR_STORAGE instead of hanging, and work again after SIGCONT', { timeout: 60_000 }, async () => {
    const s = open({ prefix: `frozen-${randomUUID()}/` });
    await s.store('a', Buffer.from('1'));
    await etcd.process.freeze();
    try {
      await assert.rejects(s.store('a', Buffer.from('2')), { code: 'ERR_STORAGE' });
      await assert.rejects(s.load('a'), { code: 'ERR_STORAGE' });
      await assert.rejects(s.list('', true), { code: 'ERR_STORAGE' });
      await assert.rejects(s.lock('l', { timeoutMs: 5_000 }), { code: 'ERR_STORAGE' });
    } finally {
      etcd.process.thaw();
    }
    await eventually(() => s.store('b', Buffer.from('3')));
    assert.equal((await s.load('b')).toString(), '3');
  });

  it('a keeper renewing while etcd is down fails with ERR_STORAGE, keeps serving, loses no certificate, and renews once etcd is back', { timeout: 90_000 }, async () => {
    const storage = open({ prefix: `keeper-${randomUUID()}/`, lockTtlMs: 2_000 });
    const keeper = new CertKeeper({ storage, issuers: [{ type: 'internal' }], logger: silentLogger(), challenges: { http01: false, tlsAlpn01: { listener: false } } });
    try {
      const names = ['a.etcd-faults.test', 'b.etcd-faults.test', 'c.etcd-faults.test'];
      await keeper.manageSync(names);
      const served = keeper.status(names[0]!).serialNumber;
      await etcd.process.kill();
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
