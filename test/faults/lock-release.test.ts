/**
 * Issue 14 fault test: the name's lock is released on every error path, not
 * only on close(). After each failure (the issuer fails, a cert_obtaining
 * listener vetoes, the store fails, the lease is lost), another FileStorage
 * instance on the same root (another process) takes the lock at once with
 * tryLock; after a lost lease the keeper leaves the new holder's lock alone.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { CertKeeperOptions } from '../../src/config/index.js';
import { CertKeeperError, ManageError, StorageError } from '../../src/errors.js';
import { CertKeeper } from '../../src/manager/keeper.js';
import { FileStorage } from '../../src/storage/file.js';
import { certificateLockName } from '../../src/storage/layout.js';
import { startPebble, type PebbleHandle } from '../helpers/pebble.js';
import { skipUnlessInstalled } from '../helpers/system.js';
import { countingStorage, pebbleOptions, type CountingStorage } from './helpers.js';

const skip = skipUnlessInstalled('pebble', 'pebble-challtestsrv');

describe('fault: the certificate lock is released on every error path', { skip }, () => {
  let pebble: PebbleHandle;
  let dir: string;
  let peer: FileStorage;
  let third: FileStorage;
  before(async () => {
    pebble = await startPebble();
    dir = await mkdtemp(join(tmpdir(), 'certkeeper-lock-release-'));
    peer = new FileStorage({ root: dir, lockStaleMs: 5_000 });
    third = new FileStorage({ root: dir, lockStaleMs: 5_000 });
  });
  after(async () => {
    await peer?.close();
    await third?.close();
    await pebble?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  /** Runs manageSync for `name` on a fresh keeper that fails somehow; returns the failure's error. */
  async function failOnce(name: string, setup: (keeper: CertKeeper, counted: CountingStorage) => void, extra: Partial<CertKeeperOptions> = {}): Promise<CertKeeperError> {
    const own = new FileStorage({ root: dir, lockStaleMs: 5_000 });
    const counted = countingStorage(own);
    const keeper = new CertKeeper(pebbleOptions(pebble, counted.storage, extra));
    setup(keeper, counted);
    try {
      const error = await keeper.manageSync([name]).then(() => assert.fail('should fail'), (e: unknown) => e);
      assert.ok(error instanceof ManageError);
      const cause = error.failures[0]?.error;
      assert.ok(cause instanceof CertKeeperError, String(cause));
      // Still open: the lock must already be free, not freed by close().
      return cause;
    } finally {
      const lockName = certificateLockName(name);
      lockFreeBeforeClose.set(name, await third.tryLock(lockName));
      if (lockFreeBeforeClose.get(name)) await third.unlock(lockName);
      await keeper.close();
      await own.close();
    }
  }
  const lockFreeBeforeClose = new Map<string, boolean>();

  test('issuer failure (validation fails)', { timeout: 60_000 }, async () => {
    const name = 'issuer-fails.lock.test';
    const error = await failOnce(name, () => undefined, { challenges: { http01: { listener: false }, tlsAlpn01: false } });
    assert.notEqual(error.code, 'ERR_LOCK_TIMEOUT');
    assert.equal(lockFreeBeforeClose.get(name), true, 'another process takes the lock at once');
  });

  test('veto from the cert_obtaining event', { timeout: 60_000 }, async () => {
    const name = 'vetoed.lock.test';
    const error = await failOnce(name, (keeper) => keeper.on('cert_obtaining', (e) => e.veto('not today')));
    assert.equal(error.code, 'ERR_ABORTED');
    assert.match(error.message, /not today/);
    assert.equal(lockFreeBeforeClose.get(name), true, 'another process takes the lock at once');
  });

  test('storage error while storing the issued set', { timeout: 60_000 }, async () => {
    const name = 'store-fails.lock.test';
    const error = await failOnce(name, (_keeper, counted) => {
      counted.failStore = (key) => (key.endsWith('.pending') ? new StorageError(`Could not write "${key}": ENOSPC`) : undefined);
    });
    assert.equal(error.code, 'ERR_STORAGE');
    assert.equal(lockFreeBeforeClose.get(name), true, 'another process takes the lock at once');
  });

  test('lost lease: the keeper stops, and leaves the new holder its lock', { timeout: 60_000 }, async () => {
    const name = 'lease-lost.lock.test';
    const lockName = certificateLockName(name);
    let stolen = false;
    const error = await failOnce(name, (_keeper, counted) => {
      counted.afterStore = async (key) => {
        if (stolen || !key.includes('/challenge_tokens/')) return;
        stolen = true;
        // Another process removes the lock (an operator, a takeover) and takes it.
        await rm(join(dir, 'locks', `${lockName}.lock`), { recursive: true, force: true });
        assert.equal(await peer.tryLock(lockName), true, 'the peer takes the removed lock');
      };
    });
    assert.ok(stolen, 'the lock was taken away during the order');
    assert.equal(error.code, 'ERR_LOCK_LOST');
    assert.equal(lockFreeBeforeClose.get(name), false, 'the peer still holds it: the keeper did not release a lock it lost');
    await peer.unlock(lockName);
    assert.equal(await third.tryLock(lockName), true, 'free once the peer releases it');
    await third.unlock(lockName);
  });
});
