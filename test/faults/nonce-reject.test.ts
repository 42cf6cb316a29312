/**
 * Fault 1: Pebble rejects 90% of good nonces (PEBBLE_WFE_NONCEREJECT=90).
 * Every certificate is still obtained through the keeper, and no signed
 * request reuses a nonce (the proxy decodes every JWS protected header).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { CertKeeper } from '../../src/manager/keeper.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import { startProxy, type ProxyHandle } from '../acme/proxy.js';
import { startPebble, type PebbleHandle } from '../helpers/pebble.js';
import { skipUnlessInstalled } from '../helpers/system.js';
import { pebbleOptions } from './helpers.js';

const skip = skipUnlessInstalled('pebble', 'pebble-challtestsrv');

describe('fault: Pebble rejecting 90% of nonces', { skip }, () => {
  let pebble: PebbleHandle;
  let proxy: ProxyHandle;
  before(async () => {
    pebble = await startPebble({ nonceRejectPercent: 90 });
    proxy = await startProxy(pebble);
  });
  after(async () => {
    await proxy?.close();
    await pebble?.stop();
  });

  test('10 certificates are all obtained and no request reuses a nonce', { timeout: 120_000 }, async (t) => {
    const names = Array.from({ length: 10 }, (_, i) => `nonce${i}.example.test`);
    const keeper = new CertKeeper(pebbleOptions(pebble, new MemoryStorage(), { ca: proxy.directoryUrl, caCertificates: proxy.caPem }));
    try {
      // Every name must be obtained by manageSync itself: badNonce has its own retry budget.
      await keeper.manageSync(names);
      const serials = new Set(names.map((name) => keeper.status(name).serialNumber));
      assert.equal(serials.size, 10);
      for (const name of names) assert.equal(keeper.status(name).state, 'valid');
      const nonces = proxy.seen.filter((r) => r.method === 'POST').map((r) => r.protectedHeader?.['nonce']);
      assert.ok(nonces.length > 0 && nonces.every((n) => typeof n === 'string' && n.length > 0), 'every signed request carries a nonce');
      t.diagnostic(`${nonces.length} signed requests`);
      const reused = nonces.filter((n, i) => nonces.indexOf(n) !== i);
      assert.deepEqual(reused, [], 'no nonce used twice');
      // About 8 signed requests make one order; far more means Pebble did reject most nonces.
      assert.ok(nonces.length > 200, `${nonces.length} signed requests for 10 orders`);
    } finally {
      await keeper.close();
    }
  });
});
