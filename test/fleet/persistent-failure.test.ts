/**
 * Issue 14, defect 3 (fleet): three processes on one storage, one name that
 * always fails validation (no process answers Pebble's HTTP-01 requests).
 * The backoff is shared through storage and read under the name's lock, so
 * the fleet orders as often as one process would: over one hour of (fake,
 * per-process) time, three failed orders (1 min, 10 min, 100 min steps),
 * within Let's Encrypt's 5 failed validations per name per hour. Before,
 * each process kept its own backoff: 9 failed orders in 15 minutes.
 * A restarted fleet keeps waiting too.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startPebble, type PebbleHandle } from '../helpers/pebble.js';
import { skipUnlessInstalled } from '../helpers/system.js';
import { sharedStorage, startWorkers, stopAll, storageSkipReason, workerConfig, type StorageKind, type Worker } from './fleet.js';

const pebbleSkip = skipUnlessInstalled('pebble', 'pebble-challtestsrv');
const KINDS = ['file', 'redis'] as const satisfies readonly StorageKind[];
const storageSkip = Object.fromEntries(await Promise.all(KINDS.map(async (k) => [k, await storageSkipReason(k)] as const))) as Record<StorageKind, string | false>;
const MINUTE = 60_000;

describe('fleet: a name that keeps failing, three processes, one storage', { skip: pebbleSkip }, () => {
  let pebble: PebbleHandle;
  const workers: Worker[] = [];
  before(async () => {
    pebble = await startPebble();
  });
  after(async () => {
    await stopAll(workers);
    await pebble?.stop();
  });

  const newOrders = (): number => pebble.output().match(/POST \/order-plz/g)?.length ?? 0;

  for (const kind of KINDS) {
    test(`${kind}: failed orders per hour stay within the shared backoff, across peers and restarts`, { skip: pebbleSkip || storageSkip[kind], timeout: 300_000 }, async () => {
      const storage = await sharedStorage(kind, 5_000);
      const name = `fails-${kind}.fleet.test`;
      const start = Date.now();
      try {
        const fleet = await startWorkers(['a', 'b', 'c'].map((id) => workerConfig(id, storage, pebble, { fakeClockStart: start })));
        workers.push(...fleet);
        const base = newOrders();

        // All three at once: one order; the two others find its failure under the lock.
        const requests = fleet.map((w) => w.send({ cmd: 'manage', names: [name] }));
        const replies = await Promise.all(fleet.map((w, i) => w.reply(requests[i] as number)));
        const codes = replies.map((r) => ((r.failures as { code: string }[])[0] ?? { code: '' }).code).sort();
        assert.equal(newOrders() - base, 1, `one order for the fleet, not one per process: ${codes.join(' ')}`);
        assert.equal(codes.filter((c) => c === 'ERR_BACKOFF').length, 2, codes.join(' '));

        // One hour in five-minute steps; every process runs its due retries before the next step.
        const perStep: number[] = [];
        for (let minute = 5; minute <= 60; minute += 5) {
          const before = newOrders();
          const steps = fleet.map((w) => w.send({ cmd: 'clock', at: start + minute * MINUTE, names: [name] }));
          await Promise.all(fleet.map((w, i) => w.reply(steps[i] as number)));
          perStep.push(newOrders() - before);
        }
        const inHour = newOrders() - base;
        assert.ok(inHour <= 5, `at most 5 failed validations per name per hour, got ${inHour} (per 5-minute step: ${perStep.join(',')})`);
        assert.equal(inHour, 3, `orders at 0, 5 and 15 or 20 minutes (per step: ${perStep.join(',')})`);
        const failedEvents = fleet.flatMap((w) => w.reports.filter((r) => r.event === 'cert_failed'));
        assert.equal(failedEvents.length, 3, 'each order failed once, in one process');
        assert.deepEqual(failedEvents.map((e) => e.attempt as number).sort(), [1, 2, 3], 'the attempt count is shared by the fleet, whichever process made it');
        await stopAll(fleet);
        workers.splice(0);

        // A restarted fleet, 65 minutes in: the third failure's 100-minute step still runs.
        const restarted = await startWorkers(['d', 'e', 'f'].map((id) => workerConfig(id, storage, pebble, { fakeClockStart: start + 65 * MINUTE })));
        workers.push(...restarted);
        const again = restarted.map((w) => w.send({ cmd: 'manage', names: [name] }));
        const after = await Promise.all(restarted.map((w, i) => w.reply(again[i] as number)));
        for (const reply of after) assert.equal(((reply.failures as { code: string }[])[0] ?? { code: '' }).code, 'ERR_BACKOFF', JSON.stringify(reply));
        assert.equal(newOrders() - base, 3, 'no order from the restarted fleet');
      } finally {
        await stopAll(workers.splice(0));
        await storage.cleanup();
      }
    });
  }
});
