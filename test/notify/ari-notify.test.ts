/**
 * cert_replaced_early: the CA's ARI window (served by the fault proxy in front
 * of Pebble, which has no renewalInfo) lies in the past, as for a certificate
 * about to be revoked; the keeper renews at once, and the webhook is told the
 * certificate was replaced early by ARI, as well as renewed.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { CertKeeper } from '../../src/manager/keeper.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import { startProxy, type ProxyHandle, type SeenRequest } from '../acme/proxy.js';
import { startPebble, type PebbleHandle } from '../helpers/pebble.js';
import { skipUnlessInstalled } from '../helpers/system.js';
import { nextEvent, pebbleOptions, waitUntil } from '../faults/helpers.js';
import { startReceiver, type Receiver } from './receiver.js';

const skip = skipUnlessInstalled('pebble', 'pebble-challtestsrv');
const HOUR = 3_600_000;
const SECRET = 'ari-webhook-secret-0123456789';
const isAriGet = (r: SeenRequest): boolean => r.method === 'GET' && r.path.startsWith('/renewal-info/');

describe('notify: replaced early by ARI (proxy in front of Pebble)', { skip }, () => {
  let pebble: PebbleHandle;
  let proxy: ProxyHandle;
  let receiver: Receiver;
  before(async () => {
    pebble = await startPebble();
    proxy = await startProxy(pebble);
    receiver = await startReceiver(SECRET);
  });
  after(async () => {
    await receiver?.close();
    await proxy?.close();
    await pebble?.stop();
  });

  test('a past ARI window: cert_renewed and cert_replaced_early are sent, once each, signed', async () => {
    const name = 'ari-early.notify.test';
    const storage = new MemoryStorage();
    const options = pebbleOptions(pebble, storage, {
      ca: proxy.directoryUrl,
      caCertificates: proxy.caPem,
      notify: { webhook: { url: receiver.url, secret: SECRET, retries: 0 } },
    });
    const first = new CertKeeper(options);
    await first.manageSync([name]).finally(() => first.close());
    assert.equal(receiver.deliveries.length, 0, 'a first obtain is no notification');

    const now = Date.now();
    proxy.directoryExtra = { renewalInfo: `${new URL(proxy.directoryUrl).origin}/renewal-info` };
    proxy.inject = (r) => (isAriGet(r)
      ? { status: 200, headers: { 'content-type': 'application/json', 'retry-after': '3600' }, body: { suggestedWindow: { start: new Date(now - 2 * HOUR).toISOString(), end: new Date(now - HOUR).toISOString() } } }
      : undefined);
    const keeper = new CertKeeper(options);
    try {
      const renewed = nextEvent(keeper, 'cert_renewed');
      await keeper.manageSync([name]);
      const event = await renewed;
      assert.equal(event.renewalReason, 'ari');
      assert.equal(event.replacedEarlyByAri, true);
      await waitUntil(() => receiver.deliveries.length === 2, 'two notifications');
      const types = receiver.deliveries.map((d) => d.json.type).sort();
      assert.deepEqual(types, ['cert_renewed', 'cert_replaced_early']);
      for (const delivery of receiver.deliveries) {
        assert.equal(delivery.signatureValid, true);
        assert.equal(delivery.json.serialNumber, event.serialNumber);
        assert.equal(delivery.json.renewalReason, 'ari');
      }
    } finally {
      await keeper.close();
      proxy.inject = () => undefined;
      proxy.directoryExtra = {};
    }
  });
});
