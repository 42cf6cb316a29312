import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { onAbort } from '../../src/abort.js';
import { Semaphore } from '../../src/limits/concurrency.js';

describe('onAbort', () => {
  test('adds one native listener per signal, however many callbacks, and calls only the subscribed ones', () => {
    const controller = new AbortController();
    let native = 0;
    const add = controller.signal.addEventListener.bind(controller.signal);
    controller.signal.addEventListener = ((...args: Parameters<typeof add>) => {
      native++;
      add(...args);
    }) as typeof controller.signal.addEventListener;
    const called: number[] = [];
    const unsubscribes = Array.from({ length: 1_000 }, (_, i) => onAbort(controller.signal, () => called.push(i)));
    assert.equal(native, 1);
    for (let i = 0; i < 1_000; i += 2) unsubscribes[i]!();
    controller.abort();
    assert.equal(called.length, 500);
    assert.ok(called.every((i) => i % 2 === 1));
  });

  test('100,000 semaphore waiters on one signal all reject when it aborts', async () => {
    const controller = new AbortController();
    const semaphore = new Semaphore(1);
    let release!: () => void;
    const holder = semaphore.run(() => new Promise<void>((resolve) => (release = resolve)));
    const waiters = Array.from({ length: 100_000 }, () => semaphore.run(async () => 'ran', controller.signal));
    assert.equal(semaphore.waiting, 100_000);
    controller.abort();
    const results = await Promise.allSettled(waiters);
    assert.ok(results.every((r) => r.status === 'rejected'));
    assert.equal(semaphore.waiting, 0);
    release();
    await holder;
  });
});
