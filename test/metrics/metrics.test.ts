import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CertKeeper } from '../../src/manager/keeper.js';
import { escapeLabelValue, KeeperMetrics } from '../../src/observability/metrics.js';
import { FileStorage } from '../../src/storage/file.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import { TypedEmitter } from '../../src/events.js';
import { AcmeProblemError, ChallengeFailedError } from '../../src/errors.js';
import { startPebble, type PebbleHandle } from '../helpers/pebble.js';
import { silentLogger } from '../helpers/logging.js';
import { skipUnlessInstalled } from '../helpers/system.js';
import { loadCertificateSet } from '../../src/storage/certificates.js';
import { parsePrometheusText, type ParsedSample } from './prometheus-parser.js';

const skip = skipUnlessInstalled('pebble', 'pebble-challtestsrv');

describe('keeper.metrics() against Pebble', { skip }, () => {
  let pebble: PebbleHandle;
  let dir: string;
  before(async () => {
    pebble = await startPebble();
    dir = await mkdtemp(join(tmpdir(), 'certkeeper-metrics-'));
  });
  after(async () => {
    await pebble?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test('after two certificates: valid exposition, expiry gauges match each not-after, obtain counters and lock waits counted', async () => {
    const storage = new FileStorage({ root: join(dir, 'storage') });
    const keeper = new CertKeeper({
      ca: pebble.directoryUrl,
      caCertificates: pebble.pebbleCaPem,
      agreeToTerms: true,
      storage,
      challenges: { http01: { port: pebble.httpPort, host: '127.0.0.1' }, tlsAlpn01: false },
      logger: silentLogger(),
    });
    try {
      const names = ['metrics-one.example.test', 'metrics-two.example.test'];
      await keeper.manageSync(names);
      const before = Date.now();
      const text = keeper.metrics();
      const after = Date.now();
      const families = parsePrometheusText(text);

      const expiry = families.get('certkeeper_certificate_expiry_seconds');
      const notAfterFamily = families.get('certkeeper_certificate_not_after_timestamp_seconds');
      assert.equal(expiry?.type, 'gauge');
      assert.equal(expiry?.samples.length, 2);
      for (const name of names) {
        const status = keeper.status(name);
        const issuer = status.issuer as string;
        const set = await loadCertificateSet(storage, issuer, name);
        const notAfter = Date.parse(new X509Certificate(set.certPem).validTo);
        const sample: ParsedSample | undefined = expiry?.samples.find((s) => s.labels.name === name);
        assert.ok(sample, `expiry sample for ${name}`);
        assert.equal(sample.labels.issuer, issuer);
        // Seconds until not-after, measured between the two clock readings around the scrape.
        assert.ok(sample.value <= (notAfter - before) / 1000 && sample.value >= (notAfter - after) / 1000, `${sample.value} vs ${notAfter}`);
        assert.equal(notAfterFamily?.samples.find((s) => s.labels.name === name)?.value, notAfter / 1000);
        const next: { value: number } | undefined = families.get('certkeeper_certificate_next_renewal_seconds')?.samples.find((s) => s.labels.name === name);
        assert.ok(next && next.value > 0 && next.value < sample.value);
      }
      const obtains = families.get('certkeeper_obtains_total');
      assert.equal(obtains?.type, 'counter');
      assert.deepEqual(obtains?.samples.map((s) => [s.labels.result, s.value]), [['success', 2]]);
      assert.equal(families.get('certkeeper_managed_certificates')?.samples[0]?.value, 2);
      // Two certificate locks plus the account lock, at least.
      assert.ok((families.get('certkeeper_storage_lock_waits_total')?.samples[0]?.value ?? 0) >= 3);
      for (const family of ['certkeeper_renewals_total', 'certkeeper_failures_total', 'certkeeper_on_demand_decisions_total', 'certkeeper_sni_cache_hits_total', 'certkeeper_sni_cache_misses_total', 'certkeeper_storage_lock_wait_seconds_total']) {
        assert.ok(families.has(family), family);
      }
    } finally {
      await keeper.close();
    }
  });
});

describe('KeeperMetrics', () => {
  test('counts renewals and failures by issuer and reason from events; escapes label values', () => {
    const metrics = new KeeperMetrics();
    const events = new TypedEmitter();
    metrics.observe(events);
    const issuer = 'we"ird\\issuer\nname';
    events.emit('cert_obtained', { names: ['a.test'], issuer, renewal: true, notBefore: new Date(0), notAfter: new Date(1000), serialNumber: '01' });
    events.emit('cert_failed', { names: ['a.test'], issuer, renewal: true, error: new ChallengeFailedError('a.test', 'http-01', 'no'), attempt: 1, nextAttemptAt: undefined });
    events.emit('cert_failed', {
      names: ['b.test'], issuer: undefined, renewal: false, attempt: 1, nextAttemptAt: undefined,
      error: new AcmeProblemError({ type: 'urn:ietf:params:acme:error:caa', detail: 'CAA forbids' }),
    });
    events.emit('on_demand_denied', { name: 'x.test', reason: 'not allowed' });
    const families = parsePrometheusText(metrics.render({ certificates: [{ names: ['a.test'], issuer, notAfter: new Date(10_000), nextRenewalAt: undefined }], cache: { hits: 3, misses: 1 }, now: 4_000 }));
    assert.deepEqual(families.get('certkeeper_renewals_total')?.samples.map((s) => [s.labels.issuer, s.labels.result, s.value]), [
      [issuer, 'success', 1],
      [issuer, 'failure', 1],
    ]);
    assert.deepEqual(families.get('certkeeper_obtains_total')?.samples.map((s) => [s.labels.issuer, s.labels.result, s.value]), [['unknown', 'failure', 1]]);
    assert.deepEqual(families.get('certkeeper_failures_total')?.samples.map((s) => [s.labels.reason, s.value]), [['ERR_CHALLENGE_FAILED', 1], ['acme:caa', 1]]);
    assert.deepEqual(families.get('certkeeper_on_demand_decisions_total')?.samples.map((s) => [s.labels.decision, s.value]), [['denied', 1]]);
    assert.equal(families.get('certkeeper_certificate_expiry_seconds')?.samples[0]?.value, 6);
    assert.equal(families.get('certkeeper_certificate_next_renewal_seconds')?.samples.length, 0);
    assert.equal(families.get('certkeeper_sni_cache_hits_total')?.samples[0]?.value, 3);
    assert.equal(escapeLabelValue('a"b\\c\nd'), 'a\\"b\\\\c\\nd');
  });

  test('instrumentStorage times lock() and keeps the storage object working (private fields, capabilities)', async () => {
    const metrics = new KeeperMetrics();
    const storage = metrics.instrumentStorage(new MemoryStorage());
    assert.ok(storage instanceof MemoryStorage);
    await storage.store('k', Buffer.from('v'));
    assert.equal((await storage.load('k')).toString(), 'v');
    await storage.lock('one');
    const second = storage.lock('one');
    await storage.unlock('one');
    await second;
    await storage.unlock('one');
    const families = parsePrometheusText(metrics.render({ certificates: [], cache: { hits: 0, misses: 0 }, now: 0 }));
    assert.equal(families.get('certkeeper_storage_lock_waits_total')?.samples[0]?.value, 2);
    assert.ok((families.get('certkeeper_storage_lock_wait_seconds_total')?.samples[0]?.value ?? -1) >= 0);
  });
});
