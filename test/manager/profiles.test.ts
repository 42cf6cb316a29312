/**
 * ACME profiles through the keeper, against the test CA in front of a real
 * Pebble (every HTTP-01 challenge validated for real): the profile asked for
 * is echoed and decides the lifetime, a preference falls back in order, an
 * unknown profile fails before any order, invalidProfile moves on, the profile
 * is kept on renewal and shown by status(), list(), the status report and the
 * metrics; challenge types certkeeper does not know are ignored.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import acme from 'acme-client';
import { Registry } from 'prom-client';
import { InvalidProfileError, ProfileUnavailableError } from '../../src/acme/profiles.js';
import { TrustHandle } from '../../src/acme/trust.js';
import type { CertKeeperOptions } from '../../src/config/index.js';
import { InvalidOptionError, ManageError } from '../../src/errors.js';
import { renderStatusHtml } from '../../src/http/status-page.js';
import { CertKeeper } from '../../src/manager/keeper.js';
import { registerCertKeeperInstruments } from '../../src/observability/opentelemetry.js';
import { registerCertKeeperMetrics } from '../../src/observability/prometheus.js';
import { loadCertificateSet } from '../../src/storage/certificates.js';
import { FileStorage } from '../../src/storage/file.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import { startTestCa, type TestCa } from '../../src/testing/index.js';
import { runCli } from '../cli/helpers.js';
import { pebbleOptions } from '../faults/helpers.js';
import { installAcmeClientHooks } from '../helpers/acme-client-trust.js';
import { startPebble, type PebbleHandle } from '../helpers/pebble.js';
import { skipUnlessInstalled } from '../helpers/system.js';

const skip = skipUnlessInstalled('pebble', 'pebble-challtestsrv');

class TestReader extends MetricReader {
  protected override async onForceFlush(): Promise<void> {}
  protected override async onShutdown(): Promise<void> {}
}
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

function lifetimeOf(chainPem: string): number {
  const leaf = new X509Certificate(chainPem);
  return Date.parse(leaf.validTo) - Date.parse(leaf.validFrom);
}

describe('ACME profiles through the keeper (test CA in front of Pebble)', { skip }, () => {
  let pebble: PebbleHandle;
  let ca: TestCa;
  before(async () => {
    pebble = await startPebble();
    ca = await startTestCa({ pebble: { directoryUrl: pebble.directoryUrl, managementUrl: pebble.managementUrl, caCertificate: pebble.pebbleCaPem } });
  });
  after(async () => {
    await ca?.close();
    await pebble?.stop();
  });

  const options = (storage: MemoryStorage, extra: Partial<CertKeeperOptions> = {}, testCa: TestCa = ca): CertKeeperOptions =>
    pebbleOptions(pebble, storage, { ca: testCa.directoryUrl, caCertificates: testCa.caCertificate, ...extra });

  async function withKeeper<T>(storage: MemoryStorage, extra: Partial<CertKeeperOptions>, run: (keeper: CertKeeper) => Promise<T>): Promise<T> {
    const keeper = new CertKeeper(options(storage, extra));
    try {
      return await run(keeper);
    } finally {
      await keeper.close();
    }
  }

  test('a per-call profile is sent, echoed and stored; its lifetime applies; status, list, report, page and metrics show it', async () => {
    const name = 'short.profiles.test';
    const storage = new MemoryStorage();
    await withKeeper(storage, { profile: 'classic' }, async (keeper) => {
      // Per call wins over the keeper's (and so the issuer's) profile.
      await keeper.manageSync([name], { profile: 'shortlived' });
      const status = keeper.status(name);
      assert.equal(status.profile, 'shortlived');
      const set = await loadCertificateSet(storage, status.issuer!, name);
      assert.equal(ca.certificate(set.certPem).profile, 'shortlived');
      assert.equal(lifetimeOf(set.certPem), 160 * HOUR);
      assert.equal(set.meta.profile, 'shortlived');
      assert.equal(set.meta.profileRequested, true);
      assert.equal(keeper.list().find((c) => c.names.includes(name))?.profile, 'shortlived');
      const entry = keeper.statusReport().certificates.find((c) => c.names.includes(name));
      assert.equal(entry?.profile, 'shortlived');
      assert.match(renderStatusHtml(keeper.statusReport()), /<div class="hint">profile shortlived<\/div>/);
      assert.match(keeper.metrics(), new RegExp(`certkeeper_certificate_expiry_seconds\\{name="${name.replace(/\./g, '\\.')}",issuer="[^"]+",profile="shortlived"\\}`));
      const family = keeper.metricFamilies().find((f) => f.name === 'certkeeper_certificate_not_after_timestamp_seconds');
      assert.ok(family?.labelNames.includes('profile'));
      assert.equal(family?.samples.find((s) => s.labels['name'] === name)?.labels['profile'], 'shortlived');
      // The same label through prom-client and through OpenTelemetry.
      const registry = new Registry();
      registerCertKeeperMetrics(keeper, { registry });
      assert.match(await registry.metrics(), /certkeeper_certificate_not_after_timestamp_seconds\{[^}]*profile="shortlived"[^}]*\}/);
      const reader = new TestReader();
      const provider = new MeterProvider({ readers: [reader] });
      try {
        registerCertKeeperInstruments(keeper, { meter: provider.getMeter('profiles-test') });
        const { resourceMetrics } = await reader.collect();
        const points = resourceMetrics.scopeMetrics.flatMap((s) => s.metrics).find((m) => m.descriptor.name === 'certkeeper_certificate_not_after_timestamp_seconds')?.dataPoints ?? [];
        assert.equal(points.find((p) => p.attributes['name'] === name)?.attributes['profile'], 'shortlived');
      } finally {
        await provider.shutdown();
      }
    });
  });

  test('an issuer preference takes the first profile the directory offers, in the order given', async () => {
    const name = 'prefer.profiles.test';
    const storage = new MemoryStorage();
    await withKeeper(storage, { issuers: [{ type: 'acme', profile: ['nonesuch', 'tlsserver', 'classic'] }] }, async (keeper) => {
      await keeper.manageSync([name]);
      const set = await loadCertificateSet(storage, keeper.status(name).issuer!, name);
      assert.equal(ca.certificate(set.certPem).profile, 'tlsserver');
      assert.equal(lifetimeOf(set.certPem), 45 * DAY);
      assert.equal(keeper.status(name).profile, 'tlsserver');
    });
  });

  test('no profile asked: the CA default, echoed and shown, but not marked as asked for', async () => {
    const name = 'default.profiles.test';
    const storage = new MemoryStorage();
    await withKeeper(storage, {}, async (keeper) => {
      const set = await keeper.obtain(name);
      assert.equal(ca.certificate(set.certPem).profile, 'classic');
      assert.equal(set.meta.profile, 'classic');
      assert.equal(set.meta.profileRequested, undefined);
    });
  });

  test('a profile the directory does not offer fails with ERR_PROFILE_UNAVAILABLE naming the offered ones, before any order', async () => {
    const storage = new MemoryStorage();
    await withKeeper(storage, {}, async (keeper) => {
      const orders = ca.requests('newOrder');
      await assert.rejects(
        keeper.obtain('unknown.profiles.test', { profile: ['nonesuch', 'other'] }),
        (e: unknown) => e instanceof ProfileUnavailableError && e.requested.join() === 'nonesuch,other' && [...e.offered].sort().join() === 'classic,shortlived,tlsserver',
      );
      await assert.rejects(keeper.manageSync(['unknown2.profiles.test'], { profile: 'nonesuch' }), (e: unknown) =>
        e instanceof ManageError && e.failures[0]?.error instanceof ProfileUnavailableError,
      );
      assert.equal(ca.requests('newOrder'), orders, 'no newOrder was sent');
    });
  });

  test('invalidProfile from the CA moves to the next preference; when every one is refused, ERR_INVALID_PROFILE', async () => {
    const storage = new MemoryStorage();
    await withKeeper(storage, {}, async (keeper) => {
      let orders = ca.requests('newOrder');
      ca.injectFault({ endpoint: 'newOrder', status: 400, type: 'invalidProfile', detail: 'tlsserver is paused', times: 1 });
      const set = await keeper.obtain('fallback.profiles.test', { profile: ['tlsserver', 'classic'] });
      assert.equal(ca.certificate(set.certPem).profile, 'classic');
      assert.equal(set.meta.profile, 'classic');
      assert.equal(ca.requests('newOrder') - orders, 2, 'refused once, then ordered with the next profile');

      orders = ca.requests('newOrder');
      ca.injectFault({ endpoint: 'newOrder', status: 400, type: 'invalidProfile', detail: 'paused', times: 2 });
      await assert.rejects(
        keeper.obtain('refused.profiles.test', { profile: ['tlsserver', 'classic'] }),
        (e: unknown) => e instanceof InvalidProfileError && e.profiles.join() === 'tlsserver,classic' && /paused/.test(e.message),
      );
      assert.equal(ca.requests('newOrder') - orders, 2);
      ca.clearFaults();
    });
  });

  test('the profile is kept on renewal by a keeper that names none; a changed configuration wins', async () => {
    const name = 'kept.profiles.test';
    const storage = new MemoryStorage();
    const serials: string[] = [];
    await withKeeper(storage, {}, async (keeper) => {
      await keeper.manageSync([name], { profile: 'shortlived' });
      serials.push(keeper.status(name).serialNumber!);
    });
    await withKeeper(storage, {}, async (keeper) => {
      await keeper.manageSync([name]);
      assert.equal(keeper.status(name).profile, 'shortlived', 'read from storage');
      const renewed = await keeper.renew(name, { force: true });
      assert.notEqual(renewed.serialNumber, serials[0]);
      assert.equal(renewed.profile, 'shortlived');
      const set = await loadCertificateSet(storage, renewed.issuer!, name);
      assert.equal(ca.certificate(set.certPem).profile, 'shortlived');
      assert.equal(lifetimeOf(set.certPem), 160 * HOUR);
    });
    await withKeeper(storage, { profile: 'tlsserver' }, async (keeper) => {
      await keeper.manageSync([name]);
      const renewed = await keeper.renew(name, { force: true });
      assert.equal(renewed.profile, 'tlsserver');
      const set = await loadCertificateSet(storage, renewed.issuer!, name);
      assert.equal(ca.certificate(set.certPem).profile, 'tlsserver');
    });
  });

  test('certkeeper list and status show the stored profile, as text and as JSON', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'certkeeper-profiles-cli-'));
    try {
      const name = 'cli.profiles.test';
      const keeper = new CertKeeper(options(new MemoryStorage(), { storage: new FileStorage({ root: dir }) }));
      try {
        await keeper.manageSync([name], { profile: ['nonesuch', 'tlsserver'] });
      } finally {
        await keeper.close();
      }
      const env = { CERTKEEPER_STORAGE: dir, CERTKEEPER_LOG_LEVEL: 'silent' };
      const table = await runCli(['list'], env);
      assert.equal(table.code, 0, table.stderr);
      assert.match(table.stdout, /^NAMES\s+ISSUER\s+PROFILE\s+NOT AFTER/m);
      assert.match(table.stdout, /^cli\.profiles\.test\s+\S+\s+tlsserver\s+\d{4}-/m);
      const listed = JSON.parse((await runCli(['list', '--json'], env)).stdout) as { names: string[]; profile: unknown }[];
      assert.equal(listed.find((c) => c.names.includes(name))?.profile, 'tlsserver');
      const status = await runCli(['status', name], env);
      assert.match(status.stdout, /^profile:\s+tlsserver$/m);
      assert.equal((JSON.parse((await runCli(['status', name, '--json'], env)).stdout) as { profile: unknown }).profile, 'tlsserver');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('a bad profile option is refused when the options are read, naming it', () => {
    assert.throws(() => new CertKeeper({ profile: 'two words' }), (e: unknown) => e instanceof InvalidOptionError && e.option === 'profile');
    assert.throws(
      () => new CertKeeper({ issuers: [{ type: 'acme', profile: [] }] }),
      (e: unknown) => e instanceof InvalidOptionError && e.option === 'issuers[0].profile',
    );
  });

  test('challenge types certkeeper does not know (dns-persist-01, anything) are ignored, listed first or not', async () => {
    const odd = await startTestCa({
      pebble: { directoryUrl: pebble.directoryUrl, managementUrl: pebble.managementUrl, caCertificate: pebble.pebbleCaPem },
      extraChallengeTypes: ['dns-persist-01', 'future-99'],
    });
    const trust = new TrustHandle([odd.caCertificate]);
    trust.addOrigin(odd.directoryUrl);
    try {
      // The authorizations really list them first (read with a plain ACME client, given the test CA's trust).
      installAcmeClientHooks();
      const client = new acme.Client({ directoryUrl: odd.directoryUrl, accountKey: await acme.crypto.createPrivateEcdsaKey() });
      await client.createAccount({ termsOfServiceAgreed: true });
      const order = await client.createOrder({ identifiers: [{ type: 'dns', value: 'peek.profiles.test' }] });
      const [authz] = await client.getAuthorizations(order);
      assert.deepEqual(authz?.challenges.slice(0, 2).map((c) => c.type), ['dns-persist-01', 'future-99']);

      const storage = new MemoryStorage();
      const keeper = new CertKeeper(options(storage, {}, odd));
      try {
        await keeper.manageSync(['unknown-types.profiles.test']);
        assert.equal(keeper.status('unknown-types.profiles.test').state, 'valid');
      } finally {
        await keeper.close();
      }
    } finally {
      await trust.close();
      await odd.close();
    }
  });
});
