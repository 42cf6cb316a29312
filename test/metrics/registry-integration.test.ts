import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Registry, register as defaultRegistry, type OpenMetricsContentType } from 'prom-client';
import { MeterProvider, MetricReader, type ResourceMetrics } from '@opentelemetry/sdk-metrics';
import { CertKeeper } from '../../src/manager/keeper.js';
import { ManageError } from '../../src/errors.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import type { FencedWrite } from '../../src/storage/types.js';
import { FakeClock } from '../../src/testing/fake-clock.js';
import { registerCertKeeperMetrics } from '../../src/observability/prometheus.js';
import { instrumentName, registerCertKeeperInstruments } from '../../src/observability/opentelemetry.js';
import { silentLogger } from '../helpers/logging.js';
import { promtool } from '../helpers/promtool.js';
import { skipUnlessInstalled } from '../helpers/system.js';
import { parseOpenMetricsText } from './openmetrics-parser.js';
import { parsePrometheusText, type ParsedFamily } from './prometheus-parser.js';

const FAILING = 'failing.metrics.test';
const NAMES = ['one.metrics.test', 'two.metrics.test', FAILING];

/** Storage whose writes for one name fail, as a full disk would. */
class FailingStorage extends MemoryStorage {
  override async store(key: string, value: Uint8Array): Promise<void> {
    if (key.includes(FAILING)) throw new Error('disk full');
    return super.store(key, value);
  }

  override async writeFenced(lock: string, writes: readonly FencedWrite[]): Promise<void> {
    if (writes.some((w) => w.key.includes(FAILING))) throw new Error('disk full');
    return super.writeFenced(lock, writes);
  }
}

/** A keeper on the internal CA and a fake clock: two names served, one failing to be stored. */
async function keeperWithAFailure(): Promise<CertKeeper> {
  const keeper = new CertKeeper({
    storage: new FailingStorage(),
    issuers: [{ type: 'internal' }],
    challenges: { http01: { listener: false }, tlsAlpn01: false },
    clock: new FakeClock(Date.UTC(2026, 5, 1)),
    logger: silentLogger(),
    renewalPacing: false,
  });
  await assert.rejects(keeper.manageSync(NAMES), ManageError);
  return keeper;
}

/** Families as comparable data: type and samples sorted by labels. */
function normalise(families: Map<string, ParsedFamily>): Record<string, { type: string; help: string | undefined; samples: string[] }> {
  return Object.fromEntries([...families.values()].map((f) => [
    f.name,
    { type: f.type, help: f.help, samples: f.samples.map((s) => JSON.stringify([s.name, Object.entries(s.labels).sort(), s.value])).sort() },
  ]));
}

/** prom-client's typings omit the constructor's content-type argument; setContentType is the typed way. */
function openMetricsRegistry(): Registry<OpenMetricsContentType> {
  const registry = new Registry<OpenMetricsContentType>();
  registry.setContentType(Registry.OPENMETRICS_CONTENT_TYPE);
  return registry;
}

class TestReader extends MetricReader {
  protected override async onForceFlush(): Promise<void> {}
  protected override async onShutdown(): Promise<void> {}
}

describe('certkeeper/prometheus and certkeeper/opentelemetry', () => {
  let keeper: CertKeeper;
  let dir: string;
  before(async () => {
    keeper = await keeperWithAFailure();
    dir = await mkdtemp(join(tmpdir(), 'certkeeper-registry-'));
  });
  after(async () => {
    await keeper?.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('Prometheus text format: the registry scrape holds exactly the families, labels and values of keeper.metrics()', async () => {
    const registry = new Registry();
    const registration = registerCertKeeperMetrics(keeper, { registry });
    const scraped = parsePrometheusText(await registry.metrics());
    const own = parsePrometheusText(keeper.metrics());
    assert.deepEqual(normalise(scraped), normalise(own));
    // The failing name is there, with its failure count; the failed obtain counted by reason.
    const failures = scraped.get('certkeeper_certificate_consecutive_failures')?.samples.find((s) => s.labels.name === FAILING);
    assert.equal(failures?.value, 1);
    assert.deepEqual(scraped.get('certkeeper_failures_total')?.samples.map((s) => [s.labels.reason, s.value]), [['ERR_STORAGE', 1]]); // the store's failure is found by the pre-order storage probe
    assert.deepEqual(scraped.get('certkeeper_obtains_total')?.samples.map((s) => [s.labels.result, s.value]).sort(), [['failure', 1], ['success', 2]]);
    assert.equal(scraped.get('certkeeper_certificate_expiry_seconds')?.samples.length, 2);
    registration.unregister();
    registration.unregister();
    assert.equal(await registry.metrics(), '\n');
  });

  test('OpenMetrics format: counters declared without _total, samples with it, # EOF; same series as keeper.metrics()', async () => {
    const registry = openMetricsRegistry();
    registerCertKeeperMetrics(keeper, { registry });
    const text = await registry.metrics();
    assert.match(text, /^# TYPE certkeeper_obtains counter$/m);
    assert.match(text, /^certkeeper_obtains_total\{/m);
    assert.deepEqual(normalise(parseOpenMetricsText(text)), normalise(parsePrometheusText(keeper.metrics())));
  });

  test('the default registry when none is given; a second registration in one registry throws and leaves the first intact', async () => {
    const registration = registerCertKeeperMetrics(keeper);
    try {
      assert.ok(defaultRegistry.getSingleMetric('certkeeper_certificate_expiry_seconds'));
      assert.throws(() => registerCertKeeperMetrics(keeper), /already been registered/);
      const families = parsePrometheusText(await defaultRegistry.metrics());
      assert.equal(families.get('certkeeper_managed_certificates')?.samples[0]?.value, 3);
    } finally {
      registration.unregister();
    }
    assert.equal(defaultRegistry.getSingleMetric('certkeeper_certificate_expiry_seconds'), undefined);
  });

  test('promtool check metrics accepts the scrape', { skip: skipUnlessInstalled('promtool') }, async () => {
    const registry = new Registry();
    registerCertKeeperMetrics(keeper, { registry });
    const text = await registry.metrics();
    assert.ok(text.includes('certkeeper_certificate_expiry_seconds{'), 'a non-empty scrape (promtool accepts empty input)');
    const result = await promtool(['check', 'metrics'], text);
    assert.equal(result.code, 0, `${result.stdout}${result.stderr}`);
  });

  test('promtool reads the OpenMetrics scrape with its OpenMetrics parser (backfill, sample lines given a timestamp)', { skip: skipUnlessInstalled('promtool') }, async () => {
    const registry = openMetricsRegistry();
    registerCertKeeperMetrics(keeper, { registry });
    const text = await registry.metrics();
    // Backfilling needs a timestamp on every sample; nothing else is changed.
    const stamped = text.split('\n').map((line) => (line === '' || line.startsWith('#') ? line : `${line} 1780000000`)).join('\n');
    const file = join(dir, 'scrape.om.txt');
    await writeFile(file, stamped);
    const result = await promtool(['tsdb', 'create-blocks-from', 'openmetrics', file, join(dir, 'blocks')]);
    assert.equal(result.code, 0, `${result.stdout}${result.stderr}`);
    const samples = text.split('\n').filter((l) => l !== '' && !l.startsWith('#')).length;
    assert.match(result.stdout, new RegExp(`\\s${samples}\\s+\\d+\\s+${samples}\\s`), `every sample ingested: ${result.stdout}`);
  });

  test('OpenTelemetry: every family reported through meters with the same attributes and values', async () => {
    const reader = new TestReader();
    const provider = new MeterProvider({ readers: [reader] });
    let readings = 0;
    const source = { metricFamilies: () => (readings++, keeper.metricFamilies()) };
    const registration = registerCertKeeperInstruments(source, { meter: provider.getMeter('certkeeper-test') });
    try {
      const { resourceMetrics, errors } = await reader.collect();
      assert.deepEqual(errors, []);
      const reported = otelPoints(resourceMetrics);
      const expected: Record<string, string[]> = {};
      for (const family of keeper.metricFamilies()) {
        expected[instrumentName(family)] = family.samples.map((s) => JSON.stringify([Object.entries(s.labels).sort(), s.value])).sort();
      }
      // OpenTelemetry drops instruments with no data point; compare those that have one, and require all others empty.
      for (const [name, points] of Object.entries(expected)) assert.deepEqual(reported[name] ?? [], points, name);
      assert.equal(reported['certkeeper_obtains']?.length, 2);
      assert.equal(reported['certkeeper_certificate_consecutive_failures']?.length, 3);
      // One reading of the keeper per collection (plus the one that named the instruments).
      assert.equal(readings, 2);
      registration.unregister();
      registration.unregister();
      await reader.collect();
      assert.equal(readings, 2, 'no reading after unregister()');
    } finally {
      await provider.shutdown();
    }
  });
});

function otelPoints(resourceMetrics: ResourceMetrics): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const scope of resourceMetrics.scopeMetrics) {
    for (const metric of scope.metrics) {
      out[metric.descriptor.name] = metric.dataPoints
        .map((p) => JSON.stringify([Object.entries(p.attributes).map(([k, v]) => [k, String(v)]).sort(), p.value]))
        .sort();
    }
  }
  return out;
}

test('prom-client and @opentelemetry/api are imported only by their subpath modules (optional peers)', async () => {
  const src = new URL('../../src/', import.meta.url);
  const files = (await readdir(src, { recursive: true })).filter((f) => f.endsWith('.ts'));
  const importers: Record<string, string[]> = { 'prom-client': [], '@opentelemetry/api': [] };
  for (const file of files) {
    const text = await readFile(new URL(file, src), 'utf8');
    for (const pkg of Object.keys(importers)) if (new RegExp(`from '${pkg}'|import\\('${pkg}'\\)`).test(text)) importers[pkg]?.push(file);
  }
  assert.deepEqual(importers, { 'prom-client': ['observability/prometheus.ts'], '@opentelemetry/api': ['observability/opentelemetry.ts'] });
});
