import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { AbortedError, ClosedError, InvalidOptionError } from '../../src/errors.js';
import { Semaphore, Singleflight } from '../../src/limits/concurrency.js';

/** A promise resolved from outside. */
function deferred<T = void>(): { promise: Promise<T>; resolve: (value: T) => void; reject: (error: unknown) => void } {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('Semaphore', () => {
  test('never runs more than max at once, and runs everything in FIFO order', async () => {
    const semaphore = new Semaphore(3);
    const gates = Array.from({ length: 20 }, () => deferred());
    const started: number[] = [];
    let running = 0;
    let peak = 0;
    const runs = gates.map((gate, i) =>
      semaphore.run(async () => {
        started.push(i);
        running++;
        peak = Math.max(peak, running);
        await gate.promise;
        running--;
        return i;
      }),
    );
    await tick();
    assert.deepEqual(started, [0, 1, 2]);
    assert.equal(semaphore.inFlight, 3);
    assert.equal(semaphore.waiting, 17);
    // Finish them out of order, one at a time.
    for (const i of [1, 0, 2, ...Array.from({ length: 17 }, (_, k) => k + 3)]) {
      gates[i]?.resolve();
      await tick();
      assert.ok(semaphore.inFlight <= 3);
    }
    assert.deepEqual(await Promise.all(runs), Array.from({ length: 20 }, (_, i) => i));
    assert.deepEqual(started, Array.from({ length: 20 }, (_, i) => i));
    assert.equal(peak, 3);
    assert.equal(semaphore.peakInFlight, 3);
    assert.equal(semaphore.inFlight, 0);
  });

  test('a failing task releases its slot', async () => {
    const semaphore = new Semaphore(1);
    await assert.rejects(semaphore.run(async () => { throw new Error('x'); }), /x/);
    assert.equal(await semaphore.run(() => 42), 42);
    assert.equal(semaphore.inFlight, 0);
  });

  test('aborting while waiting gives up the place; close() rejects the rest', async () => {
    const semaphore = new Semaphore(1);
    const gate = deferred();
    const first = semaphore.run(() => gate.promise);
    const controller = new AbortController();
    const aborted = semaphore.run(async () => 'never', controller.signal);
    const closed = semaphore.run(async () => 'never');
    controller.abort();
    await assert.rejects(aborted, AbortedError);
    assert.equal(semaphore.waiting, 1);
    semaphore.close();
    await assert.rejects(closed, ClosedError);
    gate.resolve();
    await first;
    await assert.rejects(semaphore.run(async () => 1), ClosedError);
  });

  test('max must be a positive integer', () => {
    assert.throws(() => new Semaphore(0), InvalidOptionError);
    assert.throws(() => new Semaphore(1.5), InvalidOptionError);
    assert.doesNotThrow(() => new Semaphore(Number.POSITIVE_INFINITY));
  });
});

describe('Singleflight', () => {
  test('50 concurrent calls for one key make one call and share its result', async () => {
    const flight = new Singleflight<string, string>();
    const gate = deferred<string>();
    let calls = 0;
    const results = Array.from({ length: 50 }, () =>
      flight.run('example.com', () => {
        calls++;
        return gate.promise;
      }),
    );
    await tick();
    assert.equal(calls, 1);
    assert.equal(flight.size, 1);
    gate.resolve('certificate');
    assert.deepEqual(await Promise.all(results), Array(50).fill('certificate'));
    assert.equal(flight.size, 0, 'forgotten once settled');
    // A later call starts fresh.
    assert.equal(await flight.run('example.com', async () => { calls++; return 'again'; }), 'again');
    assert.equal(calls, 2);
  });

  test('different keys do not coalesce; a rejection reaches every waiter and is forgotten', async () => {
    const flight = new Singleflight<string, number>();
    let calls = 0;
    const a = flight.run('a', async () => ++calls);
    const b = flight.run('b', async () => ++calls);
    assert.deepEqual((await Promise.all([a, b])).sort(), [1, 2]);
    const failing = () => flight.run('c', () => { throw new Error('sync failure'); });
    const [x, y] = [failing(), failing()];
    await assert.rejects(x, /sync failure/);
    await assert.rejects(y, /sync failure/);
    assert.equal(flight.has('c'), false);
  });

  test("one caller's abort stops only that caller", async () => {
    const flight = new Singleflight<string, string>();
    const gate = deferred<string>();
    const controller = new AbortController();
    const leaving = flight.run('k', () => gate.promise, controller.signal);
    const staying = flight.run('k', () => gate.promise);
    controller.abort();
    await assert.rejects(leaving, AbortedError);
    gate.resolve('done');
    assert.equal(await staying, 'done');
  });
});
