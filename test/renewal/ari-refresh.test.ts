/**
 * ARI state belongs to one certificate (cert-manager #8993): unit tests of
 * refreshAri() and the sidecar reader with a stub issuer and a fake clock.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { RenewalInfo } from '../../src/acme/ari.js';
import type { Issuer } from '../../src/issuers/types.js';
import { applySidecar } from '../../src/manager/stored-sets.js';
import { refreshAri, retryAtAfter, type AriRefreshDeps } from '../../src/renewal/ari-refresh.js';
import { certificateLockName } from '../../src/storage/layout.js';
import { currentAri, newRecord, setAri, type ManagedRecord } from '../../src/renewal/managed-record.js';
import { buildCertificateMeta, saveCertificateSet, type CertificateMeta } from '../../src/storage/certificates.js';
import { selfSignedPair } from '../../src/testing/conformance-helpers.js';
import { MemoryBackend, MemoryStorage } from '../../src/storage/memory.js';
import { FakeClock } from '../../src/testing/fake-clock.js';
import { silentLogger } from '../helpers/logging.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

function served(issuer: Issuer, now: number, serial: string): ManagedRecord {
  const record = newRecord([{ type: 'dns', value: 'a.example.test', wildcard: false }], { issuers: [issuer], keyType: 'ecdsa-p256' } as never);
  Object.assign(record, { issuerKey: issuer.key, certPem: `pem-${serial}`, serialNumber: serial, notBefore: now - DAY, notAfter: now + 89 * DAY, materialId: serial });
  return record;
}

function deps(clock: FakeClock, calls: { reschedule: number; askAgainAt: number[] }): AriRefreshDeps {
  return {
    clock,
    renewalWindowRatio: 1 / 3,
    storage: new MemoryStorage(),
    logger: silentLogger(),
    signal: new AbortController().signal,
    reschedule: () => calls.reschedule++,
    askAgainAt: (at) => calls.askAgainAt.push(at),
    peerReplaced: () => assert.fail('no peer here'),
  };
}

describe('ARI state per certificate', () => {
  test('a name only listed at start-up (sidecar read, PEM left in storage) is asked about with the stored PEM; a newer stored serial is not', async () => {
    const clock = new FakeClock(Date.now());
    const asked: string[] = [];
    const issuer = {
      key: 'ca',
      issue: async () => assert.fail(),
      renewalInfo: async (certPem: string): Promise<RenewalInfo> => (asked.push(certPem), { windowStart: clock.now() + DAY, windowEnd: clock.now() + 2 * DAY, retryAfter: clock.now() + HOUR, retryAfterMs: HOUR }),
    } as unknown as Issuer;
    const storage = new MemoryStorage();
    const { certPem, keyPem } = await selfSignedPair(['a.example.test']);
    const saved = await saveCertificateSet(storage, { certPem, keyPem, meta: buildCertificateMeta({ certPem, keyPem, issuerKey: 'ca', names: ['a.example.test'] }) });
    const record = newRecord([{ type: 'dns', value: 'a.example.test', wildcard: false }], { issuers: [issuer], keyType: 'ecdsa-p256' } as never);
    applySidecar(record, saved.meta);
    assert.equal(record.certPem, undefined, 'the warm-up reads the sidecar only');
    const calls = { reschedule: 0, askAgainAt: [] as number[] };
    assert.equal(await refreshAri(record, { ...deps(clock, calls), storage }), 'asked');
    assert.deepEqual(asked, [certPem], 'the stored certificate is the one asked about');
    assert.ok(currentAri(record), 'its window is taken');

    // A peer renewed it meanwhile: the stored set is another certificate than the one this record knows.
    record.serialNumber = 'not-the-stored-serial';
    asked.length = 0;
    assert.equal(await refreshAri(record, { ...deps(clock, calls), storage }), 'skipped');
    assert.deepEqual(asked, [], 'no question about a certificate the record does not serve');
  });

  test('an answer that arrives after the certificate was replaced is dropped: no window, no reschedule, the new refresh kept', async () => {
    const clock = new FakeClock(Date.UTC(2026, 11, 3));
    let answer!: (info: RenewalInfo) => void;
    const issuer = { key: 'ca', issue: async () => assert.fail(), renewalInfo: () => new Promise<RenewalInfo>((resolve) => (answer = resolve)) } as unknown as Issuer;
    const record = served(issuer, clock.now(), 'aa');
    const calls = { reschedule: 0, askAgainAt: [] as number[] };
    const refreshing = refreshAri(record, deps(clock, calls));
    await new Promise((resolve) => setImmediate(resolve));
    // Renewed meanwhile (e.g. by a forced renew): another certificate is served now.
    Object.assign(record, { serialNumber: 'bb', certPem: 'pem-bb' });
    answer({ windowStart: clock.now() - 2 * HOUR, windowEnd: clock.now() - HOUR, retryAfter: clock.now() + HOUR, retryAfterMs: HOUR });
    assert.equal(await refreshing, 'stale');
    assert.equal(currentAri(record), undefined, 'the old certificate window is not taken for the new one');
    assert.equal(calls.reschedule, 0);
    assert.deepEqual(calls.askAgainAt, [], "the new certificate's own refresh is not pushed back");
  });

  test('a peer that holds the lock and stores no answer is waited for twice, then the refresh asks the CA itself', async () => {
    const clock = new FakeClock(Date.UTC(2026, 11, 3));
    let asked = 0;
    const issuer = {
      key: 'ca',
      issue: async () => assert.fail(),
      renewalInfo: async (): Promise<RenewalInfo> => (asked++, { windowStart: clock.now() + DAY, windowEnd: clock.now() + 2 * DAY, retryAfter: clock.now() + HOUR, retryAfterMs: HOUR }),
    } as unknown as Issuer;
    const record = served(issuer, clock.now(), 'aa');
    const backend = new MemoryBackend();
    const peer = new MemoryStorage({ backend });
    assert.ok(await peer.tryLock(certificateLockName(record.certName)), 'the peer holds the lock (and never answers)');
    const calls = { reschedule: 0, askAgainAt: [] as number[] };
    const d = { ...deps(clock, calls), storage: new MemoryStorage({ backend }) };
    assert.equal(await refreshAri(record, d), 'peer-busy');
    assert.equal(await refreshAri(record, d), 'peer-busy');
    assert.equal(asked, 0, 'a peer holding the lock is given time to ask and store');
    assert.equal(await refreshAri(record, d), 'asked');
    assert.equal(asked, 1);
    assert.ok(currentAri(record), 'its answer is taken in memory');
  });

  test('a window taken for one serial does not count for the next; a sidecar without ARI state forgets it', () => {
    const clock = new FakeClock(Date.UTC(2026, 11, 3));
    const issuer = { key: 'ca', issue: async () => assert.fail(), renewalInfo: async () => undefined } as unknown as Issuer;
    const record = served(issuer, clock.now(), 'aa');
    setAri(record, 'aa', { windowStart: clock.now() - 2 * HOUR, windowEnd: clock.now() - HOUR }, clock.now() - HOUR);
    assert.ok(currentAri(record));
    record.serialNumber = 'bb';
    assert.equal(currentAri(record), undefined, 'keyed by the serial it was given for');
    const meta = { issuerKey: 'ca', serialNumber: 'cc', notBefore: new Date(clock.now()).toISOString(), notAfter: new Date(clock.now() + 90 * DAY).toISOString(), renewal: { failures: 0 } } as unknown as CertificateMeta;
    record.serialNumber = 'aa';
    applySidecar(record, meta);
    assert.equal(record.ariWindow, undefined);
    assert.equal(currentAri(record), undefined);
    const withAri = { ...meta, serialNumber: 'dd', renewal: { failures: 0, ari: { windowStart: '2026-12-10T00:00:00Z', windowEnd: '2026-12-11T00:00:00Z', selectedTime: '2026-12-10T06:00:00Z', retryAfter: '2026-12-03T06:00:00Z', explanationUrl: 'https://ca.test/why' } } } as unknown as CertificateMeta;
    applySidecar(record, withAri);
    assert.equal(currentAri(record)?.window.explanationUrl, 'https://ca.test/why');
    assert.equal(currentAri(record)?.selectedTime, Date.parse('2026-12-10T06:00:00Z'));
  });

  test('a failed request without Retry-After is asked again after a minute, doubling per failure in a row, and a success starts over', async () => {
    const clock = new FakeClock(Date.UTC(2026, 11, 3));
    let fail = true;
    const issuer = {
      key: 'ca',
      issue: async () => assert.fail(),
      renewalInfo: async (): Promise<RenewalInfo> => {
        if (fail) throw new Error('socket hang up');
        return { windowStart: clock.now() + DAY, windowEnd: clock.now() + 2 * DAY, retryAfter: clock.now() + HOUR, retryAfterMs: HOUR };
      },
    } as unknown as Issuer;
    const record = served(issuer, clock.now(), 'aa');
    const calls = { reschedule: 0, askAgainAt: [] as number[] };
    const d = deps(clock, calls);
    for (let i = 0; i < 3; i++) assert.equal(await refreshAri(record, d), 'failed');
    assert.deepEqual(calls.askAgainAt.map((at) => at - clock.now()), [60_000, 120_000, 240_000], 'not the 6 h poll interval: a drill must not be missed');
    fail = false;
    assert.equal(await refreshAri(record, d), 'asked');
    fail = true;
    assert.equal(await refreshAri(record, d), 'failed');
    assert.equal(calls.askAgainAt.at(-1)! - clock.now(), 60_000, 'the count starts over after an answer');
  });

  test('the failure backoff stops at the usual poll interval, and a CA Retry-After still wins', () => {
    const now = Date.UTC(2026, 11, 3);
    assert.equal(retryAtAfter(new Error('timeout'), now, 50) - now, 6 * HOUR);
    assert.equal(retryAtAfter(Object.assign(new Error('paused'), { retryAt: now + 2 * HOUR }), now, 1) - now, 2 * HOUR);
  });
});
