/**
 * Fault 7: 200 expired certificates in storage at start-up. The orders are
 * throttled to maxConcurrentOrders, never a burst. The internal issuer stands
 * in for the CA (200 Pebble orders would take most of a minute here); each
 * issue() is held for 20 ms so that an unthrottled start would overlap them all.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { InternalIssuer } from '../../src/issuers/internal.js';
import type { IssueRequest, Issuer, IssuedCertificate } from '../../src/issuers/types.js';
import { CertKeeper } from '../../src/manager/keeper.js';
import { loadCertificateSet, saveCertificateSet } from '../../src/storage/certificates.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import type { Storage } from '../../src/storage/types.js';
import { FakeClock } from '../../src/testing/fake-clock.js';
import { silentLogger } from '../helpers/logging.js';

const DAY = 86_400_000;

/** The internal CA, counting issue() calls in flight. */
class CountingIssuer implements Issuer {
  readonly key: string;
  readonly #inner: InternalIssuer;
  inFlight = 0;
  peak = 0;
  calls = 0;
  constructor(storage: Storage) {
    this.#inner = new InternalIssuer({ storage, logger: silentLogger() });
    this.key = this.#inner.key;
  }
  async issue(request: IssueRequest): Promise<IssuedCertificate> {
    this.calls++;
    this.inFlight++;
    this.peak = Math.max(this.peak, this.inFlight);
    try {
      await new Promise((resolve) => setTimeout(resolve, 20));
      return await this.#inner.issue(request);
    } finally {
      this.inFlight--;
    }
  }
}

describe('fault: 200 expired names at start-up', () => {
  test('orders are throttled to maxConcurrentOrders; all 200 end up served', { timeout: 60_000 }, async (t) => {
    const storage = new MemoryStorage();
    const names = Array.from({ length: 200 }, (_, i) => `expired${i}.example.test`);
    const base = { storage, challenges: { http01: false, tlsAlpn01: { listener: false } }, logger: silentLogger() } as const;

    // One one-day certificate covering all 200 names, issued three days ago, then filed under each name: all expired now.
    const past = new CertKeeper({ ...base, clock: new FakeClock(Date.now() - 3 * DAY), issuers: [{ type: 'internal', leafLifetimeMs: DAY }] });
    const started = Date.now();
    try {
      const set = await past.obtain(names);
      for (const name of names) await saveCertificateSet(storage, { ...set, meta: { ...set.meta, names: [name] } });
    } finally {
      await past.close();
    }
    const sample = await loadCertificateSet(storage, 'internal-local', names[0]!);
    assert.ok(Date.parse(sample.meta.notAfter) < Date.now(), 'stored certificates are expired');

    const issuer = new CountingIssuer(storage);
    const keeper = new CertKeeper({ ...base, issuers: [issuer], maxConcurrentOrders: 4 });
    const restarted = Date.now();
    t.diagnostic(`filing 200 expired certificates took ${restarted - started} ms`);
    try {
      await keeper.manageSync(names);
      t.diagnostic(`re-obtaining 200 expired certificates, 4 at a time, took ${Date.now() - restarted} ms`);
      assert.equal(issuer.calls, 200, 'every expired name was ordered once');
      assert.equal(issuer.peak, 4, 'never more than maxConcurrentOrders in flight, and the limit was used');
      assert.equal(keeper.orderStats().peakInFlight, 4);
      for (const name of names) assert.equal(keeper.status(name).state, 'valid');
      assert.ok(keeper.status(names[199]!).notAfter!.getTime() > Date.now());
    } finally {
      await keeper.close();
    }
  });
});
