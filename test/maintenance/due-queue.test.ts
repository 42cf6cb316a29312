import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MAX_TIMER_DELAY_MS, type Clock, type TimerHandle } from '../../src/clock.js';
import { ClosedError } from '../../src/errors.js';
import { DueQueue } from '../../src/renewal/due-queue.js';
import { FakeClock } from '../../src/testing/fake-clock.js';

const DAY = 24 * 60 * 60 * 1000;

/** A FakeClock that records every delay asked of it. */
class RecordingClock implements Clock {
  readonly delays: number[] = [];
  constructor(readonly inner: FakeClock) {}
  now(): number {
    return this.inner.now();
  }
  setTimer(fn: () => void, ms: number): TimerHandle {
    this.delays.push(ms);
    return this.inner.setTimer(fn, ms);
  }
}

describe('DueQueue', () => {
  test('fires due keys in due-time order, ties in scheduling order', async () => {
    const clock = new FakeClock();
    const fired: string[] = [];
    const queue = new DueQueue<string>({ clock, onDue: (key) => fired.push(key) });
    const t0 = clock.now();
    queue.schedule('c', t0 + 3000);
    queue.schedule('a', t0 + 1000);
    queue.schedule('b1', t0 + 2000);
    queue.schedule('b2', t0 + 2000);
    queue.schedule('d', t0 + 4000);
    await clock.advance(2500);
    assert.deepEqual(fired, ['a', 'b1', 'b2']);
    assert.equal(queue.size, 2);
    await clock.advance(10_000);
    assert.deepEqual(fired, ['a', 'b1', 'b2', 'c', 'd']);
    assert.equal(queue.size, 0);
    assert.equal(clock.pendingTimers, 0, 'no timer left once the queue is empty');
    queue.close();
  });

  test('a past due time fires on the next tick', async () => {
    const clock = new FakeClock();
    const fired: string[] = [];
    const queue = new DueQueue<string>({ clock, onDue: (key) => fired.push(key) });
    queue.schedule('late', clock.now() - DAY);
    assert.deepEqual(fired, [], 'never synchronously inside schedule()');
    await clock.advance(0);
    assert.deepEqual(fired, ['late']);
    queue.close();
  });

  test('reschedule moves a key both ways; unschedule removes it', async () => {
    const clock = new FakeClock();
    const fired: string[] = [];
    const queue = new DueQueue<string>({ clock, onDue: (key) => fired.push(key) });
    const t0 = clock.now();
    queue.schedule('x', t0 + 1000);
    queue.schedule('y', t0 + 2000);
    queue.schedule('z', t0 + 3000);
    queue.schedule('x', t0 + 5000); // later
    queue.schedule('z', t0 + 500); // earlier
    assert.equal(queue.dueAt('x'), t0 + 5000);
    assert.equal(queue.size, 3, 'rescheduling does not duplicate');
    assert.equal(queue.unschedule('y'), true);
    assert.equal(queue.unschedule('y'), false);
    assert.equal(queue.dueAt('y'), undefined);
    await clock.advance(4000);
    assert.deepEqual(fired, ['z']);
    await clock.advance(1000);
    assert.deepEqual(fired, ['z', 'x']);
    queue.close();
  });

  test('onDue may reschedule the key it is given', async () => {
    const clock = new FakeClock();
    let count = 0;
    const queue: DueQueue<string> = new DueQueue<string>({
      clock,
      onDue: (key) => {
        count++;
        if (count < 3) queue.schedule(key, clock.now() + 1000);
      },
    });
    queue.schedule('k', clock.now() + 1000);
    await clock.advance(10_000);
    assert.equal(count, 3);
    assert.equal(queue.size, 0);
    queue.close();
  });

  test('a due time 60 days out fires when the clock reaches it, with every timer delay clamped to 2^31-1 ms', async () => {
    const fake = new FakeClock();
    const clock = new RecordingClock(fake);
    const fired: number[] = [];
    const queue = new DueQueue<string>({ clock, onDue: () => fired.push(fake.now()) });
    const due = fake.now() + 60 * DAY;
    queue.schedule('far', due);
    await fake.advance(30 * DAY);
    assert.deepEqual(fired, [], 'the clamped timer woke early and re-armed without firing');
    assert.equal(queue.stats.lastTickExamined, 1);
    await fake.advance(30 * DAY);
    assert.deepEqual(fired, [due]);
    assert.ok(clock.delays.length >= 3, 'needed several clamped timers');
    assert.ok(clock.delays.every((ms) => ms >= 0 && ms <= MAX_TIMER_DELAY_MS), `delays: ${clock.delays.join(', ')}`);
    queue.close();
  });

  test('100,000 scheduled keys: a tick with nothing due examines 1 entry; due ones fire in order', async () => {
    const clock = new FakeClock();
    const fired: number[] = [];
    const queue = new DueQueue<number>({ clock, onDue: (key) => fired.push(key) });
    const t0 = clock.now();
    const n = 100_000;
    // Keys in a scrambled order so the heap does real work; key i is due at t0 + 30 days + i seconds.
    for (let j = 0; j < n; j++) {
      const i = (j * 7919) % n;
      queue.schedule(i, t0 + 30 * DAY + i * 1000);
    }
    assert.equal(queue.size, n);
    // The first timer is clamped (~24.8 days): it wakes with nothing due.
    await clock.advance(25 * DAY);
    const idle = queue.stats;
    assert.equal(idle.ticks, 1);
    assert.equal(idle.lastTickExamined, 1, 'an idle tick looks at the top of the heap only');
    assert.equal(idle.fired, 0);
    // Move to just after key 2 is due: keys 0, 1, 2 fire, in order.
    await clock.set(t0 + 30 * DAY + 2000);
    assert.deepEqual(fired, [0, 1, 2]);
    assert.ok(queue.stats.lastTickExamined <= 2, `examined ${queue.stats.lastTickExamined}`);
    assert.ok(queue.stats.totalExamined <= 10, `a handful of entries in all, not n: ${queue.stats.totalExamined}`);
    assert.equal(queue.size, n - 3);
    queue.close();
    assert.equal(queue.size, 0);
  });

  test('an exception in onDue goes to onError and the other keys still fire', async () => {
    const clock = new FakeClock();
    const errors: string[] = [];
    const fired: string[] = [];
    const queue = new DueQueue<string>({
      clock,
      onDue: (key) => {
        if (key === 'bad') throw new Error('boom');
        fired.push(key);
      },
      onError: (error, key) => errors.push(`${key}: ${(error as Error).message}`),
    });
    queue.schedule('bad', clock.now() + 1);
    queue.schedule('good', clock.now() + 2);
    await clock.advance(5);
    assert.deepEqual(errors, ['bad: boom']);
    assert.deepEqual(fired, ['good']);
    queue.close();
  });

  test('close() cancels the timer, is idempotent, and later schedules throw ClosedError', async () => {
    const clock = new FakeClock();
    const fired: string[] = [];
    const queue = new DueQueue<string>({ clock, onDue: (key) => fired.push(key) });
    queue.schedule('a', clock.now() + 1000);
    assert.equal(clock.pendingTimers, 1);
    queue.close();
    queue.close();
    assert.equal(clock.pendingTimers, 0);
    await clock.advance(5000);
    assert.deepEqual(fired, []);
    assert.throws(() => queue.schedule('b', clock.now()), ClosedError);
  });
});
