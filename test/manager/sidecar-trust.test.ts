/**
 * The sidecar is a cache, the certificate is the truth (issue 14, defect 8):
 * with the sidecar's notAfter moved a year ahead (fingerprints still match,
 * since they cover the certificate and key only), a certificate expiring in
 * 24 h must be scheduled for renewal from its real notAfter, and an expired
 * one must not be served, on every load path (eager, background warm-up of
 * many names, lazy manageAsync, the re-read under the lock).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { IssueRequest, Issuer, IssuedCertificate } from '../../src/issuers/types.js';
import { CertKeeper, DEFAULT_EAGER_LOAD_LIMIT } from '../../src/manager/keeper.js';
import { buildCertificateMeta, loadCertificateMeta, loadCertificateSet, saveCertificateSet } from '../../src/storage/certificates.js';
import { certificateKeys } from '../../src/storage/layout.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import { FakeClock } from '../../src/testing/fake-clock.js';
import { silentLogger } from '../helpers/logging.js';
import { createTestCa, createTestLeaf, type TestLeaf } from '../helpers/tls-certs.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const YEAR = 365 * DAY;
const ISSUER_KEY = 'tamper-test';

/** Counts orders and fails them: nothing may replace the stored certificate behind the test's back. */
class RefusingIssuer implements Issuer {
  readonly key = ISSUER_KEY;
  readonly ordered: string[] = [];
  async issue(request: IssueRequest): Promise<IssuedCertificate> {
    this.ordered.push(request.identifiers[0]!.value);
    throw new Error('test issuer refuses to issue');
  }
}

/** Stores `leaf` under each name, then moves the sidecar's notAfter a year ahead (fingerprints untouched). */
async function storeTampered(storage: MemoryStorage, leaf: TestLeaf, names: string[]): Promise<void> {
  for (const name of names) {
    const meta = buildCertificateMeta({ certPem: leaf.chainPem, keyPem: leaf.keyPem, issuerKey: ISSUER_KEY, names: [name] });
    await saveCertificateSet(storage, { certPem: leaf.chainPem, keyPem: leaf.keyPem, meta });
    const key = certificateKeys(ISSUER_KEY, name).meta;
    const stored = JSON.parse((await storage.load(key)).toString('utf8'));
    stored.notAfter = new Date(Date.parse(stored.notAfter) + YEAR).toISOString();
    await storage.store(key, Buffer.from(JSON.stringify(stored)));
  }
}

type DatedLeaf = TestLeaf & { notBefore: Date; notAfter: Date };

async function leafExpiringIn(ms: number, names = ['*.tamper.test']): Promise<DatedLeaf> {
  const ca = await createTestCa();
  // Whole seconds: X.509 times carry no milliseconds.
  const now = Math.floor(Date.now() / 1000) * 1000;
  const notBefore = new Date(now - HOUR);
  const notAfter = new Date(now + ms);
  return { ...(await createTestLeaf(ca, { names, notBefore, notAfter })), notBefore, notAfter };
}

async function until(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 400 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 25));
  assert.ok(condition(), what);
}

function keeperFor(storage: MemoryStorage, issuer: Issuer, clock: FakeClock): CertKeeper {
  return new CertKeeper({ storage, issuers: [issuer], clock, logger: silentLogger(), challenges: { http01: false, tlsAlpn01: { listener: false } } });
}

describe('sidecar dates are never trusted over the certificate', () => {
  test('the storage API reports the certificate\'s own dates, whatever the sidecar says', async () => {
    const storage = new MemoryStorage();
    const leaf = await leafExpiringIn(DAY, ['a.tamper.test']);
    await storeTampered(storage, leaf, ['a.tamper.test']);
    const realNotAfter = leaf.notAfter.getTime();
    assert.equal(Date.parse((await loadCertificateSet(storage, ISSUER_KEY, 'a.tamper.test')).meta.notAfter), realNotAfter);
    assert.equal(Date.parse((await loadCertificateMeta(storage, ISSUER_KEY, 'a.tamper.test')).notAfter), realNotAfter);
    assert.equal(Date.parse((await loadCertificateMeta(storage, ISSUER_KEY, 'a.tamper.test')).notBefore), leaf.notBefore.getTime());
  });

  test('eager start-up: renewal is scheduled from the certificate\'s real notAfter', async () => {
    const storage = new MemoryStorage();
    const name = 'eager.tamper.test';
    const leaf = await leafExpiringIn(DAY, [name]);
    await storeTampered(storage, leaf, [name]);
    const issuer = new RefusingIssuer();
    const clock = new FakeClock(Date.now());
    const keeper = keeperFor(storage, issuer, clock);
    try {
      await keeper.manageSync([name]);
      const status = keeper.status(name);
      assert.equal(status.notAfter?.getTime(), leaf.notAfter.getTime());
      assert.ok(status.nextRenewalAt && status.nextRenewalAt.getTime() < leaf.notAfter.getTime(), `renewal at ${status.nextRenewalAt?.toISOString()}`);
    } finally {
      await keeper.close();
    }
  });

  test('lazy manageAsync: renewal is scheduled from the certificate, not the sidecar', async () => {
    const storage = new MemoryStorage();
    const names = Array.from({ length: DEFAULT_EAGER_LOAD_LIMIT + 1 }, (_, i) => `n${i}.tamper.test`);
    const leaf = await leafExpiringIn(DAY);
    await storeTampered(storage, leaf, names);
    const issuer = new RefusingIssuer();
    const clock = new FakeClock(Date.now());
    const keeper = keeperFor(storage, issuer, clock);
    try {
      keeper.manageAsync(names);
      await until(() => names.every((n) => keeper.status(n).nextRenewalAt !== undefined), 'every name scheduled');
      for (const name of [names[0]!, names[500]!, names[names.length - 1]!]) {
        const status = keeper.status(name);
        assert.equal(status.notAfter?.getTime(), leaf.notAfter.getTime(), name);
        assert.ok(status.nextRenewalAt!.getTime() < leaf.notAfter.getTime(), `${name} renews at ${status.nextRenewalAt!.toISOString()}`);
      }
    } finally {
      await keeper.close();
    }
  });

  test('many names (background warm-up): renewal is scheduled from the certificate', async () => {
    const storage = new MemoryStorage();
    const names = Array.from({ length: DEFAULT_EAGER_LOAD_LIMIT + 1 }, (_, i) => `w${i}.tamper.test`);
    const leaf = await leafExpiringIn(DAY);
    await storeTampered(storage, leaf, names);
    const issuer = new RefusingIssuer();
    const clock = new FakeClock(Date.now());
    const keeper = keeperFor(storage, issuer, clock);
    try {
      await keeper.manageSync(names);
      await until(() => names.every((n) => keeper.status(n).nextRenewalAt !== undefined), 'every name scheduled');
      for (const name of [names[0]!, names[names.length - 1]!]) {
        assert.ok(keeper.status(name).nextRenewalAt!.getTime() < leaf.notAfter.getTime(), name);
      }
      assert.deepEqual(issuer.ordered, [], 'a certificate with most of its day left is not ordered at once');
    } finally {
      await keeper.close();
    }
  });

  test('an expired certificate with a sidecar saying "valid for a year" is not served: it is ordered again', async () => {
    const storage = new MemoryStorage();
    const name = 'expired.tamper.test';
    const leaf = await leafExpiringIn(DAY, [name]);
    await storeTampered(storage, leaf, [name]);
    const issuer = new RefusingIssuer();
    // Two days later, the real certificate expired a day ago.
    const clock = new FakeClock(Date.now() + 2 * DAY);
    const keeper = keeperFor(storage, issuer, clock);
    try {
      await assert.rejects(keeper.manageSync([name]), { code: 'ERR_MANAGE_FAILED' });
      assert.deepEqual(issuer.ordered, [name], 'the expired certificate was ordered again');
      const status = keeper.status(name);
      assert.notEqual(status.state, 'valid');
      assert.equal(status.serialNumber, undefined, 'nothing is served');
    } finally {
      await keeper.close();
    }
  });

  test('an expired certificate among many names (warm-up) is ordered again, not scheduled a year out', async () => {
    const storage = new MemoryStorage();
    const names = Array.from({ length: DEFAULT_EAGER_LOAD_LIMIT + 1 }, (_, i) => `x${i}.tamper.test`);
    const leaf = await leafExpiringIn(DAY);
    await storeTampered(storage, leaf, names);
    const issuer = new RefusingIssuer();
    const clock = new FakeClock(Date.now() + 2 * DAY);
    const keeper = keeperFor(storage, issuer, clock);
    try {
      await keeper.manageSync(names);
      // Ordering 1,001 names takes a while on a loaded machine; the first fifty prove warm-up found them expired.
      await until(() => issuer.ordered.length >= 50, 'expired names are ordered again');
      assert.equal(new Set(issuer.ordered).size, issuer.ordered.length, 'each name ordered once');
      const farOut = names.filter((n) => (keeper.status(n).nextRenewalAt?.getTime() ?? 0) > clock.now() + 30 * DAY);
      assert.deepEqual(farOut, [], 'no name scheduled from the sidecar\'s date');
    } finally {
      await keeper.close();
    }
  });
});
