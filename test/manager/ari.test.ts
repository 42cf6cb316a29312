/**
 * ARI (RFC 9773) at the manager level. The Debian Pebble has no renewalInfo,
 * so the fault-injecting proxy (test/acme/proxy.ts) adds it to the directory
 * and answers the renewalInfo GETs itself; orders still go to Pebble.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';
import { certId } from '../../src/acme/ari.js';
import { CertKeeper } from '../../src/manager/keeper.js';
import { loadCertificateSet } from '../../src/storage/certificates.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import { FakeClock } from '../../src/testing/fake-clock.js';
import { startProxy, type ProxyHandle, type SeenRequest } from '../acme/proxy.js';
import { startPebble, type PebbleHandle } from '../helpers/pebble.js';
import { skipUnlessInstalled } from '../helpers/system.js';
import { nextEvent, pebbleOptions, settle, waitUntil } from '../faults/helpers.js';

const skip = skipUnlessInstalled('pebble', 'pebble-challtestsrv');
const HOUR = 3_600_000;
const isAriGet = (r: SeenRequest): boolean => r.method === 'GET' && r.path.startsWith('/renewal-info/');
const isNewOrder = (r: SeenRequest): boolean => r.method === 'POST' && r.path.includes('order-plz');

describe('ARI through the manager (proxy in front of Pebble)', { skip }, () => {
  let pebble: PebbleHandle;
  let proxy: ProxyHandle;
  before(async () => {
    pebble = await startPebble();
    proxy = await startProxy(pebble);
  });
  after(async () => {
    await proxy?.close();
    await pebble?.stop();
  });
  afterEach(() => {
    proxy.inject = () => undefined;
    proxy.directoryExtra = {};
    proxy.seen.length = 0;
  });

  const options = (storage: MemoryStorage, clock?: FakeClock) =>
    pebbleOptions(pebble, storage, { ca: proxy.directoryUrl, caCertificates: proxy.caPem, ...(clock ? { clock } : {}) });

  /** Obtains a certificate through the proxy with no renewalInfo advertised, then turns ARI on with `answer`. */
  async function storedThenAri(name: string, answer: (r: SeenRequest) => { headers: Record<string, string>; body: unknown }): Promise<{ storage: MemoryStorage; certPem: string; plainDueAt: number }> {
    const storage = new MemoryStorage();
    const first = new CertKeeper(options(storage));
    let certPem: string;
    let plainDueAt: number;
    try {
      await first.manageSync([name]);
      const status = first.status(name);
      certPem = (await loadCertificateSet(storage, status.issuer!, name)).certPem;
      plainDueAt = status.nextRenewalAt!.getTime();
    } finally {
      await first.close();
    }
    proxy.directoryExtra = { renewalInfo: `${new URL(proxy.directoryUrl).origin}/renewal-info` };
    proxy.inject = (r) => (isAriGet(r) ? { status: 200, ...answer(r) } : undefined);
    proxy.seen.length = 0;
    return { storage, certPem, plainDueAt };
  }

  test('a suggested window in the past renews at once, with replaces naming the old certificate', async () => {
    const name = 'past.example.test';
    const now = Date.now();
    const { storage, certPem } = await storedThenAri(name, () => ({
      headers: { 'content-type': 'application/json', 'retry-after': '3600' },
      body: { suggestedWindow: { start: new Date(now - 2 * HOUR).toISOString(), end: new Date(now - HOUR).toISOString() }, explanationURL: 'https://ca.example/incident' },
    }));
    const keeper = new CertKeeper(options(storage));
    try {
      const renewed = nextEvent(keeper, 'cert_renewed');
      await keeper.manageSync([name]);
      const event = await renewed;
      assert.notEqual(event.serialNumber, new (await import('node:crypto')).X509Certificate(certPem).serialNumber);
      assert.equal(proxy.seen.filter(isAriGet)[0]?.path, `/renewal-info/${certId(certPem)}`);
      const orders = proxy.seen.filter(isNewOrder);
      assert.equal(orders.length, 1, 'one renewal order');
      assert.equal((orders[0]?.payload as Record<string, unknown>).replaces, certId(certPem));
      assert.equal(keeper.status(name).serialNumber, event.serialNumber);
    } finally {
      await keeper.close();
    }
  });

  test('a malformed window (end before start) falls back to the lifetime rule and orders nothing', async () => {
    const name = 'malformed.example.test';
    const now = Date.now();
    const { storage, plainDueAt } = await storedThenAri(name, () => ({
      headers: { 'content-type': 'application/json' },
      body: { suggestedWindow: { start: new Date(now - HOUR).toISOString(), end: new Date(now - 2 * HOUR).toISOString() } },
    }));
    const keeper = new CertKeeper(options(storage));
    try {
      await keeper.manageSync([name]);
      await waitUntil(() => proxy.seen.some(isAriGet), 'the renewalInfo request');
      await settle(200);
      assert.equal(keeper.status(name).nextRenewalAt?.getTime(), plainDueAt, 'same due time as without ARI');
      assert.equal(proxy.seen.filter(isNewOrder).length, 0);
    } finally {
      await keeper.close();
    }
  });

  test('renewalInfo is fetched again at Retry-After, clamped to at least 1 minute and at most 1 day', async () => {
    const name = 'retry.example.test';
    const now = Date.now();
    const window = { start: new Date(now + 10 * 24 * HOUR).toISOString(), end: new Date(now + 11 * 24 * HOUR).toISOString() };
    const answeredAt: number[] = [];
    const { storage } = await storedThenAri(name, () => {
      // On the keeper's clock: the delay the CA gave is counted from the answer on the clock that schedules the next ask.
      answeredAt.push(clock.now());
      // First a Retry-After of 5 s (clamped up to 1 minute), then an HTTP date 3 days ahead (clamped down to 1 day).
      const retryAfter = answeredAt.length === 1 ? '5' : new Date(Date.now() + 3 * 24 * HOUR).toUTCString();
      return { headers: { 'content-type': 'application/json', 'retry-after': retryAfter }, body: { suggestedWindow: window } };
    });
    const clock = new FakeClock(Date.now());
    const keeper = new CertKeeper(options(storage, clock));
    const gets = (): number => proxy.seen.filter(isAriGet).length;
    /** The keeper persists each answer's Retry-After once it has rescheduled: the sign an answer was handled. */
    const storedRetryAfter = async (): Promise<number> => {
      const status = keeper.status(name);
      const meta = (await loadCertificateSet(storage, status.issuer!, name)).meta;
      return meta.renewal.ari ? Date.parse(meta.renewal.ari.retryAfter) : 0;
    };
    const inWindow = (): boolean => {
      const dueAt = keeper.status(name).nextRenewalAt?.getTime() ?? 0;
      return dueAt >= Date.parse(window.start) && dueAt <= Date.parse(window.end);
    };
    try {
      await keeper.manageSync([name]);
      // The first fetch is scheduled "now" on the fake clock: fire it.
      await clock.advance(0);
      await waitUntil(() => gets() === 1 && inWindow(), 'the first renewalInfo answer to reschedule the renewal inside the window');
      await waitUntil(async () => (await storedRetryAfter()) >= answeredAt[0]! + 60_000, 'the first answer to be handled');

      // Retry-After is counted from the answer, on the keeper's (fake) clock.
      const firstAt = answeredAt[0]!;
      await clock.set(firstAt + 50_000);
      await settle(200);
      assert.equal(gets(), 1, 'not asked again before the 1-minute floor');
      await clock.set(firstAt + 90_000);
      await waitUntil(() => gets() === 2, 'the second renewalInfo request');
      await waitUntil(async () => (await storedRetryAfter()) >= answeredAt[1]! + 23 * HOUR, 'the second answer to be handled');

      const secondAt = answeredAt[1]!;
      await clock.set(secondAt + 23 * HOUR);
      await settle(200);
      assert.equal(gets(), 2, 'not asked again before a day has passed');
      await clock.set(secondAt + 24 * HOUR + 90_000);
      // ARI answers are timed on the real clock and the queue on the fake one (a day ahead by now), so the
      // third answer's own retry may fire within the same clock move: at least a third request, then.
      await waitUntil(() => gets() >= 3, 'the third renewalInfo request, after the 1-day ceiling');
      assert.equal(proxy.seen.filter(isNewOrder).length, 0, 'no renewal: the window is still ahead');
    } finally {
      await keeper.close();
    }
  });
});
