/**
 * Issue 14, defect 3: a name that keeps failing validation, across restarts.
 * Its backoff is kept in storage (with or without a certificate), so a keeper
 * restarted every five minutes of (fake) time for an hour orders no more
 * often than the backoff allows: 1 min, 10 min, 100 min -> three orders in
 * the first hour (Let's Encrypt allows five failed validations per name per
 * hour). Before, every restart ordered at once: thirteen orders.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CertKeeperError, ManageError } from '../../src/errors.js';
import { CertKeeper } from '../../src/manager/keeper.js';
import { FileStorage } from '../../src/storage/file.js';
import { FakeClock } from '../../src/testing/fake-clock.js';
import { startPebble, type PebbleHandle } from '../helpers/pebble.js';
import { skipUnlessInstalled } from '../helpers/system.js';
import { pebbleOptions } from './helpers.js';

const skip = skipUnlessInstalled('pebble', 'pebble-challtestsrv');
const MINUTE = 60_000;

describe('fault: a name failing validation, across restarts', { skip }, () => {
  let pebble: PebbleHandle;
  let dir: string;
  before(async () => {
    pebble = await startPebble();
    dir = await mkdtemp(join(tmpdir(), 'certkeeper-persistent-failure-'));
  });
  after(async () => {
    await pebble?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const newOrders = (): number => pebble.output().match(/POST \/order-plz/g)?.length ?? 0;

  test('thirteen restarts over one hour of fake time make three orders; each restart in a backoff reports ERR_BACKOFF', { timeout: 180_000 }, async () => {
    const name = 'fails.example.test';
    const start = Date.now();
    const clock = new FakeClock(start);
    const ordersBefore = newOrders();
    const outcomes: string[] = [];
    for (let minute = 0; minute <= 60; minute += 5) {
      await clock.set(start + minute * MINUTE);
      const storage = new FileStorage({ root: dir });
      // Nobody answers Pebble's HTTP-01 requests: every validation fails.
      const keeper = new CertKeeper(pebbleOptions(pebble, storage, { clock, challenges: { http01: { listener: false }, tlsAlpn01: false } }));
      try {
        const error = await keeper.manageSync([name]).then(() => assert.fail('should fail'), (e: unknown) => e);
        assert.ok(error instanceof ManageError);
        const cause = error.failures[0]?.error;
        assert.ok(cause instanceof CertKeeperError, String(cause));
        outcomes.push(`${minute}:${cause.code}`);
        const status = keeper.status(name);
        assert.equal(status.state, 'failed');
        assert.ok(status.failures >= 1, 'the failure count survives the restart');
        assert.ok(status.nextRenewalAt && status.nextRenewalAt.getTime() > clock.now(), 'the retry waits for the backoff');
      } finally {
        await keeper.close();
        await storage.close();
      }
    }
    const orders = newOrders() - ordersBefore;
    assert.ok(orders <= 5, `at most Let's Encrypt's 5 failed validations per hour, got ${orders}: ${outcomes.join(' ')}`);
    assert.equal(orders, 3, `orders at 0, 5 and 15 or 20 minutes: ${outcomes.join(' ')}`);
    assert.equal(outcomes.filter((o) => o.endsWith(':ERR_BACKOFF')).length, 13 - orders, outcomes.join(' '));
  });
});
