/**
 * Token reservations (src/limits/token-bucket.ts): an on-demand order claims a token when its handshake is
 * admitted and takes it only when the order starts, so the bucket bounds order STARTS per interval however
 * late and bunched the starts come. All time is a fake clock's: counts per fake-clock window, no wall time.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { TokenBucket, UnlimitedRateLimiter, type Reservation } from '../../src/limits/token-bucket.js';
import { FakeClock } from '../../src/testing/fake-clock.js';

/** The most of `times` (sorted) in any half-open window of `windowMs`. */
function maxIn(times: readonly number[], windowMs: number): number {
  let best = 0;
  for (let i = 0, j = 0; i < times.length; i++) {
    while ((times[i] as number) - (times[j] as number) >= windowMs) j++;
    best = Math.max(best, i - j + 1);
  }
  return best;
}

/** A small deterministic PRNG (mulberry32), so the simulation is the same every run. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('TokenBucket reservations', () => {
  test('a reservation claims a free token that nobody else can take; it leaves the bucket only at consume()', () => {
    const clock = new FakeClock();
    const bucket = new TokenBucket({ capacity: 2, refillAmount: 1, refillIntervalMs: 1000, clock });
    const first = bucket.reserve();
    const second = bucket.reserve();
    assert.ok(first && second);
    assert.equal(bucket.reserve(), undefined, 'both tokens are claimed: the third is refused at once');
    assert.equal(bucket.available, 0);
    assert.equal(bucket.reserved, 2);
    assert.equal(bucket.tryTake(), false, 'tryTake does not take a reserved token');
    assert.equal(bucket.hasToken(), false);
    first.consume();
    first.consume();
    first.release();
    assert.equal(bucket.reserved, 1, 'consume counts once; a release after it is a no-op');
    second.release();
    assert.equal(bucket.reserved, 0);
    assert.equal(bucket.available, 1, 'the released token is free again, the consumed one is gone');
    bucket.close();
  });

  test('a released token goes to a waiter of take()', async () => {
    const clock = new FakeClock();
    const bucket = new TokenBucket({ capacity: 1, refillAmount: 1, refillIntervalMs: 3_600_000, clock });
    const held = bucket.reserve();
    assert.ok(held);
    let served = false;
    const waiter = bucket.take().then(() => {
      served = true;
    });
    await clock.advance(0);
    assert.equal(served, false);
    held.release();
    await waiter;
    assert.equal(served, true);
    assert.equal(bucket.available, 0);
    bucket.close();
  });

  test('held reservations stop admissions while refills come: starts released in one bunch stay within the bucket', async () => {
    const clock = new FakeClock();
    const bucket = new TokenBucket({ capacity: 20, refillAmount: 10, refillIntervalMs: 1000, clock });
    const held: Reservation[] = [];
    const starts: number[] = [];
    let refused = 0;
    // 5 s of admissions at 80/s while no order can start (a starved process): at most the 20 of the burst are admitted.
    for (let tick = 0; tick < 400; tick++) {
      const r = bucket.reserve();
      if (r) held.push(r);
      else refused++;
      await clock.advance(12.5);
    }
    assert.equal(held.length, 20, 'admitted: the burst, nothing for the refills that came while they waited');
    assert.equal(refused, 380);
    // Then everything admitted starts at once, and admissions continue as the orders start.
    for (const r of held.splice(0)) {
      r.consume();
      starts.push(clock.now());
    }
    for (let tick = 0; tick < 800; tick++) {
      const r = bucket.reserve();
      if (r) {
        r.consume();
        starts.push(clock.now());
      }
      await clock.advance(12.5);
    }
    starts.sort((a, b) => a - b);
    assert.ok(maxIn(starts, 1000) <= 30, `at most capacity + refillAmount starts in any 1 s (saw ${maxIn(starts, 1000)})`);
    assert.ok(maxIn(starts, 10_000) <= 120, `at most capacity + 10 x refillAmount in any 10 s (saw ${maxIn(starts, 10_000)})`);
    bucket.close();
  });

  test('60 fake seconds of 83 admissions/s with random, bunched start delays: starts per window never above the bucket', async () => {
    for (const seed of [1, 2, 3]) {
      const random = prng(seed);
      const clock = new FakeClock();
      const capacity = 20;
      const refillAmount = 10;
      const bucket = new TokenBucket({ capacity, refillAmount, refillIntervalMs: 1000, clock });
      // Admitted orders wait for a start time; the process "wakes up" only now and then, so starts come in bunches.
      const waiting: Array<{ reservation: Reservation; startAt: number; release: boolean }> = [];
      const starts: number[] = [];
      let admitted = 0;
      let peakWaiting = 0;
      for (let tick = 0; tick < 60_000 / 12; tick++) {
        const now = clock.now();
        const r = bucket.reserve();
        if (r) {
          admitted++;
          // Up to 3 s late; one in ten never starts (stored by a peer, backing off): released, not consumed.
          waiting.push({ reservation: r, startAt: now + Math.floor(random() * 3000), release: random() < 0.1 });
        }
        peakWaiting = Math.max(peakWaiting, waiting.length);
        if (random() < 0.05) {
          for (let i = waiting.length - 1; i >= 0; i--) {
            const w = waiting[i] as (typeof waiting)[number];
            if (w.startAt > now) continue;
            waiting.splice(i, 1);
            if (w.release) w.reservation.release();
            else {
              w.reservation.consume();
              starts.push(now);
            }
          }
        }
        await clock.advance(12);
      }
      starts.sort((a, b) => a - b);
      const span = Math.ceil(((starts.at(-1) ?? 0) - (starts[0] ?? 0)) / 1000);
      assert.ok(starts.length <= capacity + refillAmount * span, `seed ${seed}: ${starts.length} starts over ${span} s`);
      assert.ok(maxIn(starts, 1000) <= capacity + refillAmount, `seed ${seed}: ${maxIn(starts, 1000)} starts in one fake second`);
      assert.ok(maxIn(starts, 10_000) <= capacity + 10 * refillAmount, `seed ${seed}: ${maxIn(starts, 10_000)} starts in ten fake seconds`);
      assert.ok(peakWaiting <= capacity, `seed ${seed}: at most capacity admitted and not started (saw ${peakWaiting})`);
      assert.ok(admitted > 300, `seed ${seed}: the bucket was used (${admitted} admitted)`);
      bucket.close();
    }
  });

  test('the unlimited limiter reserves at once and its reservations are no-ops', () => {
    const limiter = new UnlimitedRateLimiter();
    const r = limiter.reserve();
    assert.ok(r);
    r.consume();
    r.release();
    void limiter.close();
  });
});
