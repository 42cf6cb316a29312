import assert from 'node:assert/strict';
import { cpus } from 'node:os';
import { describe, test } from 'node:test';
import { AbortedError, ClosedError } from '../../src/errors.js';
import { EventLoopTurns, RenewalPacer, systemLoadProbe, type LoadProbe, type LoadReading } from '../../src/renewal/pacer.js';
import { FakeClock } from '../../src/testing/fake-clock.js';

/** A probe whose reading the test sets. */
function fakeProbe(initial: LoadReading): LoadProbe & { load: LoadReading; windows: number } {
  const probe = {
    load: initial,
    windows: 0,
    read: () => null,
    since: () => {
      probe.windows++;
      return probe.load;
    },
  };
  return probe;
}

const IDLE: LoadReading = { eventLoop: 0.1, idleCpus: 2 };
const options = { maxUtilization: 0.5, minIdleCpus: 1, busyRatePerSecond: 20, checkIntervalMs: 10, idleBurst: 3 };

describe('RenewalPacer', () => {
  test('when not busy, admits up to idleBurst per window, first come first served', async () => {
    const probe = fakeProbe(IDLE);
    const pacer = new RenewalPacer({ ...options, probe });
    const order: number[] = [];
    await Promise.all(Array.from({ length: 7 }, (_, i) => pacer.admit().then(() => order.push(i))));
    assert.deepEqual(order, [0, 1, 2, 3, 4, 5, 6]);
    assert.equal(probe.windows, 3, '7 renewals, 3 per window');
    assert.deepEqual(pacer.stats, { admitted: 7, admittedWhileBusy: 0, waiting: 0 });
    pacer.close();
  });

  test('a busy event loop or too few idle CPUs limit admissions to the busy rate', async () => {
    for (const busy of [{ eventLoop: 0.9, idleCpus: 2 }, { eventLoop: 0.1, idleCpus: 0.4 }]) {
      const probe = fakeProbe(busy);
      const clock = new FakeClock(0);
      const pacer = new RenewalPacer({ ...options, busyRatePerSecond: 10, probe, clock });
      const admittedAt: number[] = [];
      for (let i = 0; i < 4; i++) void pacer.admit().then(() => admittedAt.push(clock.now()));
      for (let windows = 0; admittedAt.length < 4 && windows < 1_000; windows++) await clock.advance(options.checkIntervalMs);
      // 10 a second: one every 100 ms of the pacer's clock, the first at the end of the first window.
      assert.deepEqual(admittedAt, [10, 110, 210, 310], `admissions under ${JSON.stringify(busy)}`);
      assert.equal(pacer.stats.admittedWhileBusy, 4);
      pacer.close();
    }
  });

  test('goes back to bursts as soon as the load drops', async () => {
    const probe = fakeProbe({ eventLoop: 1, idleCpus: 0 });
    const pacer = new RenewalPacer({ ...options, busyRatePerSecond: 1, probe });
    const first = pacer.admit();
    await first; // the first one goes at once: nothing was admitted in the last second
    const rest = Array.from({ length: 3 }, () => pacer.admit());
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(pacer.stats.waiting, 3, 'held back while busy');
    probe.load = IDLE;
    await Promise.all(rest);
    assert.equal(pacer.stats.admitted, 4);
    pacer.close();
  });

  test('an aborted waiter leaves the queue; the others are still admitted', async () => {
    const probe = fakeProbe({ eventLoop: 1, idleCpus: 0 });
    const pacer = new RenewalPacer({ ...options, busyRatePerSecond: 1000, probe });
    const controller = new AbortController();
    const aborted = pacer.admit(controller.signal);
    const other = pacer.admit();
    controller.abort(new Error('caller gave up'));
    await assert.rejects(aborted, AbortedError);
    await other;
    assert.deepEqual(pacer.stats, { admitted: 1, admittedWhileBusy: 1, waiting: 0 });
    pacer.close();
  });

  test('close() rejects waiting renewals, stops measuring, and later calls fail', async () => {
    const probe = fakeProbe({ eventLoop: 1, idleCpus: 0 });
    const pacer = new RenewalPacer({ ...options, busyRatePerSecond: 0.001, probe });
    await pacer.admit();
    const waiting = pacer.admit();
    pacer.close();
    pacer.close();
    await assert.rejects(waiting, ClosedError);
    const windows = probe.windows;
    await new Promise((r) => setTimeout(r, 40));
    assert.equal(probe.windows, windows, 'no window measured after close');
    await assert.rejects(pacer.admit(), ClosedError);
  });
});

describe('systemLoadProbe', () => {
  test('reports a blocked event loop as busy and idle CPUs within the machine', async () => {
    const before = systemLoadProbe.read();
    const until = performance.now() + 120;
    while (performance.now() < until) {
      // blocks the event loop, as CPU-heavy work would
    }
    const blocked = systemLoadProbe.since(before);
    assert.ok(blocked.eventLoop > 0.8, `event loop utilisation ${blocked.eventLoop}`);
    assert.ok(blocked.idleCpus >= 0 && blocked.idleCpus <= cpus().length, `idle CPUs ${blocked.idleCpus}`);

    const quiet = systemLoadProbe.read();
    await new Promise((r) => setTimeout(r, 120));
    assert.ok(systemLoadProbe.since(quiet).eventLoop < 0.5, 'an event loop that only waits is not busy');
  });
});

describe('EventLoopTurns', () => {
  test('hands out one turn per event-loop iteration', async () => {
    const turns = new EventLoopTurns();
    const log: string[] = [];
    let ticking = true;
    const ticker = (): void => {
      log.push('tick');
      if (ticking) setImmediate(ticker);
    };
    setImmediate(ticker);
    await Promise.all(Array.from({ length: 5 }, (_, i) => turns.turn().then(() => log.push(`turn${i}`))));
    ticking = false;
    const turnPositions = log.flatMap((entry, i) => (entry.startsWith('turn') ? [i] : []));
    assert.equal(turnPositions.length, 5);
    assert.deepEqual(log.filter((e) => e.startsWith('turn')), ['turn0', 'turn1', 'turn2', 'turn3', 'turn4']);
    for (let i = 1; i < turnPositions.length; i++) {
      assert.ok((turnPositions[i] as number) - (turnPositions[i - 1] as number) > 1, `turns ${i - 1} and ${i} ran in one iteration: ${log.join(' ')}`);
    }
  });

  test('exclusive() runs async tasks one at a time, in order', async () => {
    const turns = new EventLoopTurns();
    let running = 0;
    let peak = 0;
    const done: number[] = [];
    await Promise.all(
      Array.from({ length: 4 }, (_, i) =>
        turns.exclusive(async () => {
          running++;
          peak = Math.max(peak, running);
          await new Promise((r) => setTimeout(r, 5));
          running--;
          done.push(i);
        }),
      ),
    );
    assert.equal(peak, 1);
    assert.deepEqual(done, [0, 1, 2, 3]);
    await assert.rejects(turns.exclusive(() => Promise.reject(new Error('boom'))), /boom/);
    await turns.exclusive(async () => undefined); // a failed task releases the lane
  });
});
