/**
 * Fault 3: Pebble killed in the middle of a renewal order (right after the
 * HTTP-01 token is filed) and started again later. While it is down the old
 * certificate keeps being served; afterwards the keeper's scheduled retry
 * places a new order (the old one died with Pebble) and serves the result.
 */
import assert from 'node:assert/strict';
import https from 'node:https';
import { after, before, describe, test } from 'node:test';
import { CertKeeper } from '../../src/manager/keeper.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import { FakeClock } from '../../src/testing/fake-clock.js';
import { startPebble, type PebbleHandle } from '../helpers/pebble.js';
import { skipUnlessInstalled } from '../helpers/system.js';
import { handshake } from '../helpers/tls-client.js';
import { closeServer, countingStorage, listen, nextEvent, pebbleOptions } from './helpers.js';

const skip = skipUnlessInstalled('pebble', 'pebble-challtestsrv');

describe('fault: Pebble killed mid-order', { skip }, () => {
  let pebble: PebbleHandle;
  before(async () => {
    pebble = await startPebble();
  });
  after(async () => {
    await pebble?.stop();
  });

  test('old certificate served while Pebble is down; a new order after the restart succeeds', { timeout: 90_000 }, async () => {
    const name = 'midorder.example.test';
    const clock = new FakeClock(Date.now());
    const counted = countingStorage(new MemoryStorage());
    const keeper = new CertKeeper(pebbleOptions(pebble, counted.storage, { clock }));
    const server = https.createServer(keeper.tlsOptions(), (_req, res) => res.end('ok'));
    try {
      await keeper.manageSync([name]);
      const port = await listen(server);
      const oldRoot = await pebble.rootPem();
      const before = keeper.status(name);

      let killed = false;
      counted.afterStore = async (key) => {
        if (killed || !key.includes('/challenge_tokens/')) return;
        killed = true;
        await pebble.pause(); // the order exists at Pebble now; Pebble dies with it
      };
      const failed = nextEvent(keeper, 'cert_failed');
      await clock.set(before.nextRenewalAt!.getTime() + 1_000);
      const failure = await failed;
      assert.ok(killed, 'Pebble was killed during the order');
      assert.equal(failure.renewal, true);
      assert.ok(failure.nextAttemptAt);

      const served = await handshake(port, name, oldRoot);
      assert.equal(served.serialNumber, before.serialNumber?.toUpperCase(), 'old certificate served while Pebble is down');
      assert.ok(served.authorized, served.authorizationError);

      await pebble.resume();
      const ordersBefore = pebble.output().match(/Added order/g)?.length ?? 0;
      const renewed = nextEvent(keeper, 'cert_renewed');
      await clock.set(failure.nextAttemptAt.getTime() + 1_000);
      const event = await renewed;
      assert.ok((pebble.output().match(/Added order/g)?.length ?? 0) > ordersBefore, 'a new order after the restart');
      assert.notEqual(event.serialNumber, before.serialNumber);
      const fresh = await handshake(port, name, await pebble.rootPem());
      assert.equal(fresh.serialNumber, event.serialNumber.toUpperCase());
      assert.ok(fresh.authorized, fresh.authorizationError);
      assert.equal(keeper.status(name).failures, 0);
    } finally {
      counted.afterStore = undefined;
      await closeServer(server);
      await keeper.close();
    }
  });
});
