/**
 * Background work yields to handshake loads: yieldTo() waits while a load is in flight, ends when the last
 * one does, and never waits longer than its cap (moved on a fake clock, not slept).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Foreground } from '../../src/limits/foreground.js';
import { FakeClock } from '../../src/testing/fake-clock.js';

const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('Foreground', () => {
  it('resolves at once with nothing in flight', async () => {
    const foreground = new Foreground(new FakeClock(0), 20);
    let done = false;
    void foreground.yieldTo().then(() => (done = true));
    await flush();
    assert.equal(done, true);
  });

  it('waits until every load in flight ends, each leave counted once', async () => {
    const foreground = new Foreground(new FakeClock(0), 20);
    const first = foreground.enter();
    const second = foreground.enter();
    let done = false;
    void foreground.yieldTo().then(() => (done = true));
    first();
    first();
    await flush();
    assert.equal(done, false, 'one load still in flight (a second leave of the first does not count)');
    assert.equal(foreground.inFlight, 1);
    second();
    await flush();
    assert.equal(done, true);
    assert.equal(foreground.inFlight, 0);
  });

  it('gives up waiting after its cap, so background work progresses under constant load', async () => {
    const clock = new FakeClock(0);
    const foreground = new Foreground(clock, 20);
    const leave = foreground.enter();
    let done = false;
    void foreground.yieldTo().then(() => (done = true));
    await clock.advance(19);
    assert.equal(done, false);
    await clock.advance(1);
    await flush();
    assert.equal(done, true, 'the cap ended the wait while the load was still in flight');
    leave();
  });
});
