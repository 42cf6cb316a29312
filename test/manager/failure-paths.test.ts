/**
 * Issue 14, defect 1: every failure on the way to an order (the name's lock,
 * the sidecar re-read, the storage check, the store) is a failure of that
 * name: backoff, `cert_failed`, `status().lastError`, a warn log. Before, a
 * FileStorage whose `locks` is a regular file made ~1,500 lock attempts in 3 s
 * with `failures: 0`, no event and debug logs only.
 *
 * Real FileStorage and internal CA; a wrapper only counts lock attempts (and,
 * for the sidecar case, fails one kind of read). Time is the fake clock's.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { StorageError } from '../../src/errors.js';
import { CertKeeper } from '../../src/manager/keeper.js';
import { FileStorage } from '../../src/storage/file.js';
import { certificateLockName } from '../../src/storage/layout.js';
import type { Storage } from '../../src/storage/types.js';
import { FakeClock } from '../../src/testing/fake-clock.js';
import { captureLogger } from '../helpers/logging.js';
import { nextEvent, settle, within } from '../faults/helpers.js';

const MINUTE = 60_000;

interface Instrumented {
  storage: Storage;
  /** lock() calls per lock name. */
  locks: Map<string, number>;
  /** When set, load() of a key it returns an error for rejects with it. */
  failLoad: ((key: string) => Error | undefined) | undefined;
}

function instrument(inner: Storage): Instrumented {
  const handle: Instrumented = { storage: inner, locks: new Map(), failLoad: undefined };
  handle.storage = new Proxy(inner, {
    get(target, property) {
      const value = Reflect.get(target, property, target) as unknown;
      if (typeof value !== 'function') return value;
      if (property === 'lock') {
        return (name: string, options?: unknown) => {
          handle.locks.set(name, (handle.locks.get(name) ?? 0) + 1);
          return (value as (n: string, o?: unknown) => Promise<void>).call(target, name, options);
        };
      }
      if (property === 'load') {
        return async (key: string) => {
          const error = handle.failLoad?.(key);
          if (error) throw error;
          return target.load(key);
        };
      }
      return (value as (...args: unknown[]) => unknown).bind(target);
    },
  });
  return handle;
}

describe('failures before an order count as failures of the name', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'certkeeper-failure-paths-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('a lock that cannot be taken (locks is a regular file): one attempt, cert_failed, status, warn log, backoff on the fake clock', { timeout: 30_000 }, async () => {
    const root = join(dir, 'locks-file');
    await rm(root, { recursive: true, force: true });
    await mkdir(root, { recursive: true });
    await writeFile(join(root, 'locks'), 'not a folder');
    const file = new FileStorage({ root });
    const counted = instrument(file);
    const clock = new FakeClock(Date.now());
    const log = captureLogger('debug');
    const keeper = new CertKeeper({ storage: counted.storage, issuers: [{ type: 'internal' }], clock, logger: log.logger });
    const name = 'hot.example.test';
    const lockName = certificateLockName(name);
    try {
      const failed = nextEvent(keeper, 'cert_failed');
      keeper.manageAsync([name]);
      const event = await within(failed, 'cert_failed');
      assert.ok(event.error instanceof StorageError, String(event.error));
      assert.equal((event.error as StorageError).code, 'ERR_STORAGE');
      assert.equal(event.attempt, 1);
      assert.ok(event.nextAttemptAt, 'a next attempt is scheduled');
      const firstRetry = event.nextAttemptAt.getTime();
      assert.ok(firstRetry >= clock.now() + MINUTE, 'backed off by at least the first step');

      // Real time passes, fake time does not: a hot loop would make hundreds of attempts here.
      await settle(500);
      assert.equal(counted.locks.get(lockName), 1, 'one lock attempt until the backoff ends');
      const status = keeper.status(name);
      assert.equal(status.state, 'failed');
      assert.equal(status.failures, 1);
      assert.equal(status.lastError?.code, 'ERR_STORAGE');
      assert.equal(status.nextRenewalAt?.getTime(), firstRetry);
      assert.match(log.text(), /"level":40.*certificate could not be obtained|certificate could not be obtained.*"level":40/);

      await clock.set(firstRetry - 1_000);
      await settle(100);
      assert.equal(counted.locks.get(lockName), 1, 'nothing before the backoff ends');
      const second = nextEvent(keeper, 'cert_failed');
      await clock.set(firstRetry + 1);
      const again = await within(second, 'second cert_failed');
      assert.equal(again.attempt, 2);
      assert.ok(again.nextAttemptAt && again.nextAttemptAt.getTime() >= firstRetry + 10 * MINUTE, 'second step: 10 minutes');
      await settle(300);
      assert.equal(counted.locks.get(lockName), 2);
      assert.equal(keeper.status(name).failures, 2);
    } finally {
      await keeper.close();
      await file.close();
    }
  });

  test('a served certificate whose renewal cannot take its lock is backed off, not retried at the pacer\'s rate', { timeout: 30_000 }, async () => {
    const root = join(dir, 'renewal-lock');
    const file = new FileStorage({ root });
    const counted = instrument(file);
    const clock = new FakeClock(Date.now());
    const log = captureLogger('debug');
    const keeper = new CertKeeper({ storage: counted.storage, issuers: [{ type: 'internal' }], clock, logger: log.logger });
    const name = 'served.example.test';
    const lockName = certificateLockName(name);
    try {
      await keeper.manageSync([name]);
      const served = keeper.status(name);
      assert.equal(served.state, 'valid');
      const dueAt = served.nextRenewalAt!.getTime();
      const before = counted.locks.get(lockName) ?? 0;

      // The lock folder becomes a file (an operator's mistake, a broken volume).
      await rm(join(root, 'locks'), { recursive: true, force: true });
      await writeFile(join(root, 'locks'), 'not a folder');
      const failed = nextEvent(keeper, 'cert_failed');
      await clock.set(dueAt + 1);
      const event = await within(failed, 'cert_failed');
      assert.equal(event.renewal, true);
      assert.equal((event.error as StorageError).code, 'ERR_STORAGE');
      await settle(500);
      assert.equal((counted.locks.get(lockName) ?? 0) - before, 1, 'one renewal attempt until the backoff ends');
      const status = keeper.status(name);
      assert.equal(status.state, 'valid', 'the old certificate is still served');
      assert.equal(status.failures, 1);
      assert.equal(status.lastError?.code, 'ERR_STORAGE');
      assert.ok(status.nextRenewalAt!.getTime() >= dueAt + MINUTE);
    } finally {
      await keeper.close();
      await file.close();
    }
  });

  test('a sidecar that cannot be read again under the lock is a failure of the name', { timeout: 30_000 }, async () => {
    const root = join(dir, 'sidecar');
    const file = new FileStorage({ root });
    const counted = instrument(file);
    const clock = new FakeClock(Date.now());
    const keeper = new CertKeeper({ storage: counted.storage, issuers: [{ type: 'internal' }], clock, logger: captureLogger().logger });
    const name = 'sidecar.example.test';
    const lockName = certificateLockName(name);
    try {
      await keeper.manageSync([name]);
      const dueAt = keeper.status(name).nextRenewalAt!.getTime();
      const before = counted.locks.get(lockName) ?? 0;
      counted.failLoad = (key) => (key.endsWith(`/${name}.json`) ? new StorageError(`Could not read "${key}": EIO`) : undefined);
      const failed = nextEvent(keeper, 'cert_failed');
      await clock.set(dueAt + 1);
      const event = await within(failed, 'cert_failed');
      assert.match(event.error.message, /EIO/);
      await settle(500);
      assert.equal((counted.locks.get(lockName) ?? 0) - before, 1, 'one attempt until the backoff ends');
      assert.equal(keeper.status(name).failures, 1);
      assert.equal(keeper.status(name).lastError?.code, 'ERR_STORAGE');
    } finally {
      await keeper.close();
      await file.close();
    }
  });
});
