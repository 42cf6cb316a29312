/**
 * ARI that survives a drill (issue #16 item 4), through the manager against
 * the test CA in front of a real Pebble, on a fake clock moved by a pump:
 *
 * - cert-manager #8993: the old certificate's window in the past renews it
 *   once; the new certificate does not inherit that window (its own first
 *   ask fails here, so only the lifetime rule may decide), and its own window
 *   is fetched later; no further order.
 * - a revocation drill over 30 certificates: each renewed exactly once with
 *   `replaces` (the test CA's ledger), orders in flight never above
 *   maxConcurrentOrders, orders paced by the issuer's token bucket (with the
 *   fake clock held, exactly its capacity; then one per refill), at most 2 renewalInfo requests per
 *   certificate, and the explanationURL logged and in the events, never fetched.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { CertObtainedEvent, CertRenewalWindowEvent } from '../../src/events.js';
import { CertKeeper } from '../../src/manager/keeper.js';
import { loadCertificateMeta } from '../../src/storage/certificates.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import type { CertKeeperOptions } from '../../src/config/index.js';
import type { TestCaCertificate } from '../../src/testing/index.js';
import { pebbleOptions, settle, waitUntil } from '../faults/helpers.js';
import { captureLogger } from '../helpers/logging.js';
import { skipUnlessInstalled } from '../helpers/system.js';
import { countingServer, startAriHarness, type AriHarness } from './ari-harness.js';

const skip = skipUnlessInstalled('pebble', 'pebble-challtestsrv');
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

describe('ARI drills through the manager (test CA in front of Pebble, fake clock)', { skip }, () => {
  let h: AriHarness;
  let explanation: Awaited<ReturnType<typeof countingServer>>;
  before(async () => {
    h = await startAriHarness({ retryAfterSeconds: 3600 });
    explanation = await countingServer();
  });
  after(async () => {
    await explanation?.close();
    await h?.stop();
  });

  const options = (storage: MemoryStorage, extra: Partial<CertKeeperOptions> = {}): CertKeeperOptions =>
    pebbleOptions(h.pebble, storage, { ca: h.ca.directoryUrl, caCertificates: h.ca.caCertificate, clock: h.clock, renewalPacing: false, ...extra });
  /** What the test CA issued for a name, oldest first. */
  const ledger = (name: string): TestCaCertificate[] => h.ca.certificates().filter((c) => c.identifiers.includes(name));

  test('cert-manager #8993: the old window in the past renews once; the new certificate does not act on it, and gets its own window', async () => {
    const name = 'c8993.example.test';
    const keeper = new CertKeeper(options(new MemoryStorage()));
    const renewed: CertObtainedEvent[] = [];
    keeper.on('cert_renewed', (e) => renewed.push(e));
    try {
      await keeper.manageSync([name]);
      const [first] = ledger(name);
      assert.ok(first);
      await waitUntil(() => h.ca.certificate(first.certId).renewalInfoRequests === 1, 'the first renewalInfo poll');
      const now = h.clock.now();
      h.ca.setRenewalWindow(first.certId, { start: now - 2 * HOUR, end: now - HOUR });
      await h.jump(HOUR + MINUTE);
      await waitUntil(() => h.ca.certificate(first.certId).renewalInfoRequests >= 2, 'the poll that finds the window in the past');
      // The new certificate's first renewalInfo request fails: nothing but the lifetime rule may decide its renewal now.
      const beforeFault = h.ca.requests('renewalInfo');
      h.ca.injectFault({ endpoint: 'renewalInfo', status: 500 });
      await waitUntil(() => renewed.length === 1, 'the renewal', 30_000);
      const second = ledger(name)[1];
      assert.ok(second);
      assert.equal(second.replaces, first.certId, 'ordered with replaces naming the old certificate');
      await waitUntil(() => h.ca.requests('renewalInfo') === beforeFault + 1, "the new certificate's (failing) renewalInfo request");
      assert.equal(keeper.status(name).ariWindow, undefined, 'the old window is forgotten with the old certificate');

      // Past the minimum age of a fresh certificate (1 hour): acting on the old window would order again here.
      await h.jump(2 * HOUR);
      assert.equal(renewed.length, 1, 'no second renewal');
      // The failed ask is retried after the default 6 hours: the new certificate's own window arrives.
      await h.jump(5 * HOUR);
      await waitUntil(() => h.ca.certificate(second.certId).renewalInfoRequests >= 1, "the new certificate's window");
      await waitUntil(() => keeper.status(name).ariWindow !== undefined, 'the new window taken');
      assert.equal(keeper.status(name).ariWindow?.start.getTime(), h.ca.certificate(second.certId).renewalWindow.start.getTime());
      await h.jump(24 * HOUR);
      assert.equal(renewed.length, 1);
      assert.equal(ledger(name).length, 2, 'two certificates in all: the first and its one successor');
      assert.equal(h.ca.certificate(first.certId).renewalInfoRequests, 2, 'the replaced certificate is not asked about again');
    } finally {
      await keeper.close();
    }
  });

  test('revocation drill over 30 certificates: each renewed once with replaces, paced, bounded ARI requests, explanationURL never fetched', async () => {
    const N = 30;
    const MAX_ORDERS = 3;
    const BUCKET = { capacity: 4, refillAmount: 1, refillIntervalMs: 5_000 };
    const names = Array.from({ length: N }, (_, i) => `drill-${i}.example.test`);
    const log = captureLogger('info');
    const storage = new MemoryStorage();
    // The clock is held throughout: it moves only when the test says (protocol waits run on real time, so orders
    // still complete), so every refresh falls on one instant and the bucket's tokens are counted exactly.
    await h.hold();
    // A first keeper obtains the certificates and asks once about each.
    const first = new CertKeeper(options(storage));
    try {
      await first.manageSync(names);
      await h.jump(0);
      await waitUntil(() => names.every((n) => ledger(n)[0]?.renewalInfoRequests === 1), 'one renewalInfo poll per certificate', 30_000);
      await waitUntil(async () => (await Promise.all(names.map((n) => loadCertificateMeta(storage, first.status(n).issuer!, n)))).every((m) => m.renewal.ari !== undefined), 'the answers stored');
    } finally {
      await first.close();
    }
    // The keeper under test takes over the storage: the stored answers are used, not asked again.
    const keeper = new CertKeeper(options(storage, { maxConcurrentOrders: MAX_ORDERS, rateLimit: BUCKET, logger: log.logger }));
    const renewed: CertObtainedEvent[] = [];
    const windows: CertRenewalWindowEvent[] = [];
    keeper.on('cert_renewed', (e) => renewed.push(e));
    keeper.on('cert_renewal_window', (e) => windows.push(e));
    try {
      await keeper.manageSync(names);
      const ariBefore = h.ca.requests('renewalInfo');
      await h.jump(0);
      await settle(500);
      assert.ok(names.every((n) => keeper.status(n).ariWindow !== undefined), 'the stored windows are served');
      assert.equal(h.ca.requests('renewalInfo'), ariBefore, 'stored answers still fresh: no request');
      const ordersBefore = h.ca.requests('newOrder');
      const orders = (): number => h.ca.requests('newOrder') - ordersBefore;

      h.ca.revocationDrill({ explanationUrl: explanation.url });
      // Every answer asked to come back in an hour, on the same instant.
      await h.jump(HOUR);
      await waitUntil(() => windows.filter((w) => w.explanationUrl === explanation.url).length === N, 'every drill window taken', 60_000);
      // The renewals are due now: with the clock held, the bucket lets out its capacity and not one order more.
      await h.jump(0);
      await waitUntil(() => renewed.length === BUCKET.capacity, `the first ${BUCKET.capacity} renewals`, 60_000);
      await settle(500);
      assert.equal(orders(), BUCKET.capacity, 'orders while the clock is held: the bucket capacity');
      assert.equal(renewed.length, BUCKET.capacity);
      // Then one order per refill.
      for (let done = BUCKET.capacity + 1; done <= N; done++) {
        await h.jump(BUCKET.refillIntervalMs);
        await waitUntil(() => renewed.length === done, `renewal ${done}`, 60_000);
        assert.equal(orders(), done, `one more order per refill (${done})`);
      }
      // The new certificates' first refresh is due now too.
      await h.jump(0);
      await waitUntil(() => names.every((n) => (ledger(n)[1]?.renewalInfoRequests ?? 0) >= 1), "every new certificate's window fetched", 60_000);
      // Requests over the drill: from the drill until every new certificate had its first answer.
      const overDrill = new Map(names.map((n) => [n, ledger(n).reduce((sum, c) => sum + c.renewalInfoRequests, 0) - 1]));
      const ariOverDrill = h.ca.requests('renewalInfo') - ariBefore;
      const oldAsked = names.map((n) => ledger(n)[0]!.renewalInfoRequests);
      // Later polls (Retry-After: 1 hour) ask about the new certificates only, and order nothing.
      await h.jump(2 * HOUR);
      assert.deepEqual(names.map((n) => ledger(n)[0]!.renewalInfoRequests), oldAsked, 'a replaced certificate is not asked about again');

      // Each renewed exactly once, with replaces naming the certificate it replaced.
      assert.equal(renewed.length, N);
      assert.deepEqual(renewed.map((e) => e.names[0]).sort(), [...names].sort());
      for (const name of names) {
        const [old, successor, extra] = ledger(name);
        assert.equal(extra, undefined, `${name}: one successor`);
        assert.equal(successor?.replaces, old?.certId, `${name}: replaces`);
        assert.equal(old?.replacedBy, successor?.certId);
        // The drill poll of the old certificate and the first poll of the new one.
        assert.ok(overDrill.get(name)! <= 2, `${name}: ${overDrill.get(name)} renewalInfo requests over the drill, at most 2`);
      }
      assert.ok(ariOverDrill <= 2 * N, `${ariOverDrill} renewalInfo requests over the drill: at most 2 per certificate`);
      assert.ok(keeper.orderStats().peakInFlight <= MAX_ORDERS, `orders in flight never above ${MAX_ORDERS}`);

      // explanationURL: logged, in the events, never fetched.
      assert.equal(explanation.requests(), 0, 'the explanation page is never fetched');
      assert.ok(renewed.every((e) => e.renewalReason === 'ari' && e.replacedEarlyByAri === true && e.explanationUrl === explanation.url));
      const drillWindows = windows.filter((w) => w.explanationUrl === explanation.url);
      assert.equal(new Set(drillWindows.map((w) => w.names[0])).size, N, 'a cert_renewal_window event with the explanationURL for each');
      assert.ok(drillWindows.every((w) => w.source === 'ca' && w.windowEnd.getTime() < h.clock.now()));
      assert.ok(log.text().includes(explanation.url), 'the explanationURL is logged');
    } finally {
      await keeper.close();
      h.resume();
    }
  });
});
