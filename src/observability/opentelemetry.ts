/**
 * certkeeper/opentelemetry: a keeper's metrics through `@opentelemetry/api`
 * meters. Gauges become observable gauges and counters observable counters
 * (cumulative values read at collection time). Names are the Prometheus ones,
 * except that counters drop the `_total` suffix: OpenTelemetry's Prometheus
 * exporter appends it, so a scrape through it shows the same names as
 * `keeper.metrics()`. `@opentelemetry/api` is an optional peer dependency
 * imported only here.
 *
 *   import { metrics } from '@opentelemetry/api';
 *   import { registerCertKeeperInstruments } from 'certkeeper/opentelemetry';
 *   registerCertKeeperInstruments(keeper, { meter: metrics.getMeter('certkeeper') });
 */
import { metrics, type BatchObservableResult, type Meter, type Observable } from '@opentelemetry/api';
import type { MetricFamiliesSource, MetricFamily } from './metrics.js';

export type { MetricFamiliesSource } from './metrics.js';

export interface OpenTelemetryMetricsOptions {
  /** Meter to create the instruments on (default: the global MeterProvider's meter named `certkeeper`). */
  meter?: Meter;
}

export interface OpenTelemetryRegistration {
  /** Stops reporting (removes the batch callback). Idempotent. */
  unregister(): void;
}

/** The OpenTelemetry instrument name of a certkeeper family. */
export function instrumentName(family: Pick<MetricFamily, 'name' | 'type'>): string {
  return family.type === 'counter' ? family.name.replace(/_total$/, '') : family.name;
}

export function registerCertKeeperInstruments(keeper: MetricFamiliesSource, options: OpenTelemetryMetricsOptions = {}): OpenTelemetryRegistration {
  const meter = options.meter ?? metrics.getMeter('certkeeper');
  const instruments = new Map<string, Observable>();
  for (const family of keeper.metricFamilies()) {
    const name = instrumentName(family);
    const instrument = family.type === 'counter'
      ? meter.createObservableCounter(name, { description: family.help })
      : meter.createObservableGauge(name, { description: family.help });
    instruments.set(family.name, instrument);
  }
  // One reading of the keeper per collection for every instrument.
  const callback = (result: BatchObservableResult): void => {
    for (const family of keeper.metricFamilies()) {
      const instrument = instruments.get(family.name);
      if (!instrument) continue;
      for (const sample of family.samples) result.observe(instrument, sample.value, sample.labels);
    }
  };
  meter.addBatchObservableCallback(callback, [...instruments.values()]);
  let registered = true;
  return {
    unregister() {
      if (!registered) return;
      registered = false;
      meter.removeBatchObservableCallback(callback, [...instruments.values()]);
    },
  };
}
