import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { AbortedError, ClosedError, InvalidOptionError } from '../../src/errors.js';
import {
  RATE_LIMIT_PRESETS,
  TokenBucket,
  UnlimitedRateLimiter,
  createRateLimiter,
  resolveRateLimit,
} from '../../src/limits/token-bucket.js';
import { FakeClock } from '../../src/testing/fake-clock.js';

describe('TokenBucket', () => {
  test('starts full, then refills refillAmount per interval up to capacity', async () => {
    const clock = new FakeClock();
    const bucket = new TokenBucket({ capacity: 3, refillAmount: 1, refillIntervalMs: 1000, clock });
    assert.equal(bucket.tryTake(), true);
    assert.equal(bucket.tryTake(), true);
    assert.equal(bucket.tryTake(), true);
    assert.equal(bucket.tryTake(), false);
    await clock.advance(999);
    assert.equal(bucket.available, 0);
    await clock.advance(1);
    assert.equal(bucket.available, 1);
    await clock.advance(60_000);
    assert.equal(bucket.available, 3, 'capped at capacity');
    bucket.close();
  });

  test('take() waits for a refill and serves waiters in FIFO order', async () => {
    const clock = new FakeClock();
    const bucket = new TokenBucket({ capacity: 2, refillAmount: 1, refillIntervalMs: 36_000, clock });
    const order: number[] = [];
    const start = clock.now();
    const takes = Array.from({ length: 5 }, (_, i) =>
      bucket.take().then(() => order.push(i)),
    );
    await clock.advance(0);
    assert.deepEqual(order, [0, 1], 'the burst goes at once');
    assert.equal(bucket.waiting, 3);
    assert.equal(bucket.tryTake(), false, 'tryTake does not jump the queue');
    await clock.advance(35_999);
    assert.deepEqual(order, [0, 1]);
    await clock.advance(1);
    assert.deepEqual(order, [0, 1, 2]);
    await clock.set(start + 3 * 36_000);
    await Promise.all(takes);
    assert.deepEqual(order, [0, 1, 2, 3, 4]);
    assert.equal(clock.now(), start + 3 * 36_000);
    assert.equal(clock.pendingTimers, 0, 'no timer once nobody waits');
    bucket.close();
  });

  test('an aborted waiter leaves the queue; the next one gets its token', async () => {
    const clock = new FakeClock();
    const bucket = new TokenBucket({ capacity: 1, refillAmount: 1, refillIntervalMs: 1000, clock });
    await bucket.take();
    const controller = new AbortController();
    const aborted = bucket.take(controller.signal);
    const next = bucket.take();
    controller.abort();
    await assert.rejects(aborted, AbortedError);
    assert.equal(bucket.waiting, 1);
    await clock.advance(1000);
    await next;
    assert.equal(bucket.waiting, 0);
    bucket.close();
  });

  test('close() rejects waiters with ClosedError and cancels the timer', async () => {
    const clock = new FakeClock();
    const bucket = new TokenBucket({ capacity: 1, refillAmount: 1, refillIntervalMs: 1000, clock });
    bucket.tryTake();
    const waiting = bucket.take();
    assert.equal(clock.pendingTimers, 1);
    bucket.close();
    bucket.close();
    await assert.rejects(waiting, ClosedError);
    assert.equal(clock.pendingTimers, 0);
    await assert.rejects(bucket.take(), ClosedError);
  });

  test('invalid specs name the option', () => {
    assert.throws(() => new TokenBucket({ capacity: 0, refillAmount: 1, refillIntervalMs: 1 }), (e: unknown) => e instanceof InvalidOptionError && e.option === 'rateLimit.capacity');
    assert.throws(() => new TokenBucket({ capacity: 1, refillAmount: 1, refillIntervalMs: 0 }), InvalidOptionError);
  });
});

describe('rate limit options', () => {
  test("Let's Encrypt preset: 300 orders per 3 hours", () => {
    const spec = resolveRateLimit('letsencrypt');
    assert.notEqual(spec, 'unlimited');
    if (spec === 'unlimited') return;
    assert.equal(spec.capacity, 300);
    assert.equal((3 * 60 * 60 * 1000) / spec.refillIntervalMs * spec.refillAmount, 300);
    assert.ok(Object.isFrozen(RATE_LIMIT_PRESETS.letsencrypt));
  });

  test("'unlimited' and false never wait", async () => {
    for (const value of ['unlimited', false] as const) {
      const limiter = createRateLimiter(value);
      assert.ok(limiter instanceof UnlimitedRateLimiter);
      for (let i = 0; i < 1000; i++) assert.equal(limiter.tryTake(), true);
      await limiter.take();
      limiter.close();
    }
  });

  test('a custom bucket is frozen and the caller object untouched; unknown presets are rejected', () => {
    const mine = { capacity: 5, refillAmount: 2, refillIntervalMs: 100 };
    const spec = resolveRateLimit(mine, 'issuers[0].rateLimit');
    assert.deepEqual(spec, mine);
    assert.ok(Object.isFrozen(spec));
    assert.ok(!Object.isFrozen(mine));
    assert.throws(() => resolveRateLimit('nope' as 'letsencrypt', 'issuers[0].rateLimit'), (e: unknown) => e instanceof InvalidOptionError && e.option === 'issuers[0].rateLimit');
  });
});
