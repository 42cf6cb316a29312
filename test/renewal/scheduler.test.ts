/** The renewal scheduler (renewal/scheduler.ts): when a managed certificate is next worked on. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseIdentifier } from '../../src/names.js';
import { newRecord, type ManagedRecord } from '../../src/renewal/managed-record.js';
import { nextAttemptAt, RenewalScheduler } from '../../src/renewal/scheduler.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import { FakeClock } from '../../src/testing/fake-clock.js';

const DAY = 24 * 60 * 60 * 1000;
const MINUTE = 60_000;
const silent = { trace() {}, debug() {}, info() {}, warn() {}, error() {}, fatal() {}, child() { return silent; } } as never;

describe('nextAttemptAt', () => {
  test('after a failure: not before the backoff ends', () => {
    assert.equal(nextAttemptAt(1_000, 5_000), 5_000);
  });

  test('after a failure: not before the renewal is due either (a failed forced renewal of a fresh certificate)', () => {
    // The old expression, Math.max(b, Math.min(r, b)), always gave the backoff end b: 5_000 here.
    assert.equal(nextAttemptAt(90 * DAY, 5_000), 90 * DAY);
  });

  test('without a backoff: the renewal due time', () => {
    assert.equal(nextAttemptAt(7_000, undefined), 7_000);
  });
});

describe('RenewalScheduler', () => {
  function setUp(): { clock: FakeClock; scheduler: RenewalScheduler; record: ManagedRecord; renewed: ManagedRecord[] } {
    const clock = new FakeClock();
    const record = newRecord([parseIdentifier('a.test')], { issuers: [], keyType: 'ecdsa-p256' });
    const renewed: ManagedRecord[] = [];
    const scheduler = new RenewalScheduler({
      clock,
      renewalWindowRatio: 1 / 3,
      storage: new MemoryStorage(),
      logger: silent,
      signal: new AbortController().signal,
      lookup: (certName) => (certName === record.certName ? record : undefined),
      renew: (r) => renewed.push(r),
      track: (work) => work,
    });
    return { clock, scheduler, record, renewed };
  }

  test('a backoff that ends before the renewal is due schedules the renewal, not a retry', async () => {
    const { clock, scheduler, record, renewed } = setUp();
    const now = clock.now();
    Object.assign(record, { notBefore: now - DAY, notAfter: now + 89 * DAY, serialNumber: '01', materialId: 'm' });
    record.backoff = { failures: 1, nextAttemptAt: now + MINUTE };
    scheduler.scheduleNext(record);
    const dueAt = scheduler.plan(record)?.dueAt as number;
    assert.ok(dueAt > now + DAY);
    assert.equal(scheduler.nextAt(record.certName), dueAt);
    await clock.advance(2 * MINUTE);
    assert.deepEqual(renewed, [], 'nothing is retried when the backoff ends');
    await scheduler.close();
  });

  test('a failed first obtain is retried when its backoff ends', async () => {
    const { clock, scheduler, record } = setUp();
    record.backoff = { failures: 1, nextAttemptAt: clock.now() + MINUTE };
    scheduler.scheduleNext(record);
    assert.equal(scheduler.nextAt(record.certName), clock.now() + MINUTE);
    await scheduler.close();
  });

  test('a certificate already expired when it arrives (the clock jumped during the order) is replaced at once; an expired successor waits the minimum age', async () => {
    const { clock, scheduler, record } = setUp();
    const now = clock.now();
    // Issued before a +3 day jump, recorded as obtained after it: expired by our clock the moment it is served.
    Object.assign(record, { notBefore: now - 3 * DAY, notAfter: now - 2 * DAY, serialNumber: '01', materialId: 'm1', obtainedAt: now });
    scheduler.scheduleNext(record);
    assert.ok(scheduler.nextAt(record.certName)! <= now, 'due now, not an hour later: an expired certificate is served meanwhile');
    scheduler.scheduleNext(record);
    assert.ok(scheduler.nextAt(record.certName)! <= now, 'scheduling it again does not push it back');
    // Its successor is expired on arrival too: the CA's clock and ours disagree for real; no order loop.
    Object.assign(record, { notBefore: now - 3 * DAY, notAfter: now - 2 * DAY, serialNumber: '02', materialId: 'm2', obtainedAt: now });
    scheduler.scheduleNext(record);
    assert.equal(scheduler.nextAt(record.certName), now + 60 * MINUTE);
    await scheduler.close();
  });

  test('close() is idempotent and forgets every schedule; nothing is scheduled after it', async () => {
    const { scheduler, record } = setUp();
    scheduler.scheduleNext(record);
    await Promise.all([scheduler.close(), scheduler.close()]);
    scheduler.scheduleNext(record);
    assert.equal(scheduler.nextAt(record.certName), undefined);
  });
});
