/**
 * Fault 2: a CA answering 429 with Retry-After (seconds, then an HTTP date on
 * a 503) before it succeeds, through the fault-injecting proxy in front of
 * Pebble. No request arrives before the deadline, retries are bounded, and a
 * long wait is persisted: a restarted keeper does not ask before it either.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';
import { AcmeRateLimitedError, ManageError, StorageNotFoundError } from '../../src/errors.js';
import { CertKeeper } from '../../src/manager/keeper.js';
import { failureStateKey } from '../../src/storage/layout.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import { FakeClock } from '../../src/testing/fake-clock.js';
import { startProxy, type ProxyHandle, type SeenRequest } from '../acme/proxy.js';
import { startPebble, type PebbleHandle } from '../helpers/pebble.js';
import { skipUnlessInstalled } from '../helpers/system.js';
import { nextEvent, pebbleOptions, settle } from './helpers.js';

const skip = skipUnlessInstalled('pebble', 'pebble-challtestsrv');
const isNewOrder = (r: SeenRequest): boolean => r.method === 'POST' && r.path.includes('order-plz');
const HOUR = 3_600_000;

describe('fault: 429 and 503 with Retry-After', { skip }, () => {
  let pebble: PebbleHandle;
  let proxy: ProxyHandle;
  before(async () => {
    pebble = await startPebble();
    proxy = await startProxy(pebble);
  });
  after(async () => {
    await proxy?.close();
    await pebble?.stop();
  });
  afterEach(() => {
    proxy.inject = () => undefined;
    proxy.seen.length = 0;
  });

  const options = (storage: MemoryStorage, clock?: FakeClock) =>
    pebbleOptions(pebble, storage, { ca: proxy.directoryUrl, caCertificates: proxy.caPem, ...(clock ? { clock } : {}) });

  test('429 (Retry-After: 2), then 503 (Retry-After as an HTTP date), then success: each wait is honoured, 3 orders in all', { timeout: 60_000 }, async () => {
    const orderTimes: number[] = [];
    let dateDeadline = 0;
    proxy.inject = (r) => {
      if (!isNewOrder(r)) return undefined;
      orderTimes.push(Date.now());
      if (orderTimes.length === 1) {
        return { status: 429, headers: { 'retry-after': '2' }, body: { type: 'urn:ietf:params:acme:error:rateLimited', detail: 'slow down' } };
      }
      if (orderTimes.length === 2) {
        // HTTP dates have whole seconds: the deadline is the start of the second named.
        dateDeadline = Math.ceil((Date.now() + 2_000) / 1000) * 1000;
        return { status: 503, headers: { 'retry-after': new Date(dateDeadline).toUTCString() }, body: { type: 'about:blank', detail: 'maintenance' } };
      }
      return undefined;
    };
    const keeper = new CertKeeper(options(new MemoryStorage()));
    try {
      await keeper.manageSync(['waits.example.test']);
      assert.equal(keeper.status('waits.example.test').state, 'valid');
      assert.equal(orderTimes.length, 3, 'exactly one retry per refusal');
      const [first, second, third] = orderTimes as [number, number, number];
      assert.ok(second - first >= 2_000, `second order ${second - first} ms after the 429 with Retry-After: 2`);
      assert.ok(third >= dateDeadline, `third order ${dateDeadline - third} ms before the HTTP-date deadline`);
    } finally {
      await keeper.close();
    }
  });

  test('a Retry-After beyond the in-process limit is a typed error, persisted: a restarted keeper asks only after it', { timeout: 60_000 }, async () => {
    const name = 'later.example.test';
    let retryAt = 0;
    proxy.inject = (r) => {
      if (!isNewOrder(r)) return undefined;
      return { status: 429, headers: { 'retry-after': String(HOUR / 1000) }, body: { type: 'urn:ietf:params:acme:error:rateLimited', detail: 'come back in an hour' } };
    };
    const storage = new MemoryStorage();
    const first = new CertKeeper(options(storage));
    try {
      const failed = nextEvent(first, 'cert_failed');
      const error = await first.manageSync([name]).then(() => assert.fail('should be rate limited'), (e: unknown) => e);
      assert.ok(error instanceof ManageError);
      const cause = error.failures[0]?.error;
      assert.ok(cause instanceof AcmeRateLimitedError, String(cause));
      retryAt = cause.retryAt;
      assert.ok(retryAt >= Date.now() + HOUR - 60_000);
      const event = await failed;
      assert.ok(event.nextAttemptAt && event.nextAttemptAt.getTime() >= retryAt, 'the next attempt is not before Retry-After');
      assert.equal(proxy.seen.filter(isNewOrder).length, 1, 'no retry inside the process');
      const persisted = JSON.parse((await storage.load(failureStateKey(name))).toString()) as { nextAttemptAt: number; failures: number };
      assert.equal(persisted.nextAttemptAt, event.nextAttemptAt.getTime(), 'the wait is in storage');
    } finally {
      await first.close();
    }

    // Restart on the same storage, one minute short of the deadline (fake clock): no request at all.
    proxy.seen.length = 0;
    proxy.inject = () => undefined;
    const clock = new FakeClock(Date.now());
    const second = new CertKeeper(options(storage, clock));
    try {
      const error = await second.manageSync([name]).then(() => assert.fail('should still be waiting'), (e: unknown) => e);
      assert.ok(error instanceof ManageError);
      assert.equal(error.failures[0]?.error instanceof AcmeRateLimitedError, true, String(error.failures[0]?.error));
      assert.ok(Math.abs(nextAttemptOf(second, name) - retryAt) < 1_000, 'retry scheduled at the persisted Retry-After');
      await clock.set(retryAt - 60_000);
      await settle(200);
      assert.equal(proxy.seen.length, 0, 'nothing sent to the CA before the deadline');

      const obtained = nextEvent(second, 'cert_obtained');
      await clock.set(retryAt + 1_000);
      await obtained;
      assert.equal(proxy.seen.filter(isNewOrder).length, 1);
      assert.equal(second.status(name).state, 'valid');
      await assert.rejects(storage.load(failureStateKey(name)), StorageNotFoundError, 'the persisted wait is cleared once obtained');
    } finally {
      await second.close();
    }
  });

  test('a renewal refused with a long Retry-After: the sidecar backoff survives a restart, the old certificate is served meanwhile', { timeout: 60_000 }, async () => {
    const name = 'renewlater.example.test';
    const storage = new MemoryStorage();
    const clock = new FakeClock(Date.now());
    const first = new CertKeeper(options(storage, clock));
    let dueAt: number;
    let serial: string | undefined;
    let nextAttemptAt: number;
    try {
      await first.manageSync([name]);
      serial = first.status(name).serialNumber;
      dueAt = first.status(name).nextRenewalAt!.getTime();
      proxy.inject = (r) => (isNewOrder(r) ? { status: 429, headers: { 'retry-after': String(HOUR / 1000) }, body: { type: 'urn:ietf:params:acme:error:rateLimited', detail: 'later' } } : undefined);
      const failed = nextEvent(first, 'cert_failed');
      await clock.set(dueAt + 1_000);
      const failure = await failed;
      assert.equal(failure.renewal, true);
      nextAttemptAt = failure.nextAttemptAt!.getTime();
      assert.ok(nextAttemptAt >= Date.now() + HOUR - 60_000, 'the next attempt waits for Retry-After');
    } finally {
      await first.close();
    }

    proxy.seen.length = 0;
    proxy.inject = () => undefined;
    const second = new CertKeeper(options(storage, clock));
    try {
      await second.manageSync([name]);
      assert.equal(second.status(name).serialNumber, serial, 'the stored certificate is served');
      assert.equal(second.status(name).nextRenewalAt?.getTime(), nextAttemptAt, 'renewal waits for the persisted backoff');
      await settle(200);
      await clock.set(nextAttemptAt - 60_000);
      await settle(200);
      assert.equal(proxy.seen.filter(isNewOrder).length, 0, 'no renewal order before the persisted deadline');
      const renewed = nextEvent(second, 'cert_renewed');
      await clock.set(nextAttemptAt + 1_000);
      await renewed;
      assert.equal(proxy.seen.filter(isNewOrder).length, 1);
    } finally {
      await second.close();
    }
  });
});

function nextAttemptOf(keeper: CertKeeper, name: string): number {
  return keeper.status(name).nextRenewalAt?.getTime() ?? Number.NaN;
}
