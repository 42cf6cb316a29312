/**
 * Fault 4: Pebble refuses a name (domainBlocklist -> rejectedIdentifier).
 * That answer is final: one order, then no automatic retry however far the
 * clock moves, until an operator forces one.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { AcmeProblemError, ManageError } from '../../src/errors.js';
import { CertKeeper } from '../../src/manager/keeper.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import { FakeClock } from '../../src/testing/fake-clock.js';
import { startPebble, type PebbleHandle } from '../helpers/pebble.js';
import { skipUnlessInstalled } from '../helpers/system.js';
import { pebbleOptions, settle } from './helpers.js';

const skip = skipUnlessInstalled('pebble', 'pebble-challtestsrv');
const DAY = 86_400_000;

describe('fault: rejectedIdentifier', { skip }, () => {
  let pebble: PebbleHandle;
  before(async () => {
    pebble = await startPebble({ domainBlocklist: ['blocked.example.test'] });
  });
  after(async () => {
    await pebble?.stop();
  });

  const newOrders = (): number => pebble.output().match(/POST \/order-plz/g)?.length ?? 0;

  test('one order, then no retry storm over 10 days of fake time; a forced renew tries exactly once more', { timeout: 60_000 }, async () => {
    const clock = new FakeClock(Date.now());
    const keeper = new CertKeeper(pebbleOptions(pebble, new MemoryStorage(), { clock }));
    let failedEvents = 0;
    keeper.on('cert_failed', () => failedEvents++);
    try {
      const error = await keeper.manageSync(['blocked.example.test', 'fine.example.test']).then(() => assert.fail('should fail'), (e: unknown) => e);
      assert.ok(error instanceof ManageError);
      assert.deepEqual(error.failures.map((f) => f.names), [['blocked.example.test']]);
      const problem = error.failures[0]?.error;
      assert.ok(problem instanceof AcmeProblemError && problem.shortType === 'rejectedIdentifier', String(problem));
      assert.equal(newOrders(), 2, 'one order per name, no in-process retry of the refusal');
      const status = keeper.status('blocked.example.test');
      assert.equal(status.state, 'failed');
      assert.equal(status.nextRenewalAt, undefined, 'nothing scheduled');

      // Walk the clock through every backoff step and well beyond, in steps so each due timer would fire.
      for (const step of [2 * 60_000, 15 * 60_000, 2 * 3_600_000, DAY, DAY, 3 * DAY, 5 * DAY]) {
        await clock.advance(step);
        await settle(20);
      }
      assert.equal(newOrders(), 2, 'no automatic retry of a final refusal');
      assert.equal(failedEvents, 1);

      await assert.rejects(keeper.renew('blocked.example.test', { force: true }), AcmeProblemError);
      assert.equal(newOrders(), 3, 'a forced renew makes exactly one more order');
    } finally {
      await keeper.close();
    }
  });
});
