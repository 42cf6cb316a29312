import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { FakeClock } from '../../src/testing/fake-clock.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

describe('FakeClock: cancelled timers', () => {
  it('do not keep their callbacks alive while the clock stands still (a load timeout per handshake in a benchmark)', async () => {
    const clock = new FakeClock();
    let collected = 0;
    const registry = new FinalizationRegistry<number>(() => collected++);
    const COUNT = 3000;
    for (let i = 0; i < COUNT; i++) {
      const held = { payload: new Array(16).fill(i) };
      registry.register(held, i);
      clock.setTimer(() => void held.payload, 1000).cancel();
    }
    assert.equal(clock.pendingTimers, 0);
    for (let round = 0; round < 20 && collected < COUNT; round++) {
      gc();
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    assert.equal(collected, COUNT);
  });

  it('still fires the timers not cancelled, in order, and a cancel after firing changes nothing', async () => {
    const clock = new FakeClock(0);
    const fired: number[] = [];
    const handles = Array.from({ length: 2100 }, (_, i) => clock.setTimer(() => fired.push(i), i + 1));
    for (let i = 0; i < 2100; i++) if (i % 3 !== 0) handles[i]?.cancel();
    await clock.advance(10);
    handles[0]?.cancel();
    assert.deepEqual(fired, [0, 3, 6, 9]);
    assert.equal(clock.pendingTimers, 700 - 4);
    await clock.advance(3000);
    assert.equal(fired.length, 700);
    assert.equal(clock.pendingTimers, 0);
  });
});
