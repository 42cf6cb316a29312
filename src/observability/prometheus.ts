/**
 * certkeeper/prometheus: a keeper's metrics as collectors in a prom-client
 * registry, so an application that already serves `registry.metrics()` gets
 * certkeeper's series in the same scrape, in the Prometheus text format or in
 * OpenMetrics (prom-client writes the `_total` suffix of counters the way each
 * format wants it). prom-client is an optional peer dependency imported only here.
 *
 *   import { register } from 'prom-client';
 *   import { registerCertKeeperMetrics } from 'certkeeper/prometheus';
 *   registerCertKeeperMetrics(keeper, { registry: register });
 */
import { Counter, Gauge, register as defaultRegistry, type Registry, type RegistryContentType } from 'prom-client';
import type { MetricFamiliesSource, MetricFamily } from './metrics.js';

export type { MetricFamiliesSource } from './metrics.js';

export interface PrometheusMetricsOptions {
  /** The registry to add certkeeper's series to (default: prom-client's global registry). */
  registry?: Registry<RegistryContentType>;
}

export interface PrometheusRegistration {
  /** Removes certkeeper's series from the registry. Idempotent. */
  unregister(): void;
}

/**
 * Registers one prom-client Gauge or Counter per certkeeper family. Values are
 * read from the keeper at scrape time, once per scrape for all families.
 * Throws (prom-client's error) if a family of the same name is already
 * registered: one keeper per registry.
 */
export function registerCertKeeperMetrics(keeper: MetricFamiliesSource, options: PrometheusMetricsOptions = {}): PrometheusRegistration {
  const registry = options.registry ?? defaultRegistry;
  // registry.metrics() starts every collector in one synchronous pass, so one
  // reading shared until the next microtask serves the whole scrape.
  let reading: Map<string, MetricFamily> | undefined;
  const current = (name: string): MetricFamily | undefined => {
    if (!reading) {
      reading = new Map(keeper.metricFamilies().map((f) => [f.name, f]));
      queueMicrotask(() => {
        reading = undefined;
      });
    }
    return reading.get(name);
  };

  const names: string[] = [];
  try {
    for (const family of keeper.metricFamilies()) {
      const config = { name: family.name, help: family.help, labelNames: [...family.labelNames], registers: [registry] };
      if (family.type === 'counter') {
        new Counter({
          ...config,
          collect(this: Counter) {
            this.reset();
            for (const sample of current(family.name)?.samples ?? []) this.inc(sample.labels, sample.value);
          },
        });
      } else {
        new Gauge({
          ...config,
          collect(this: Gauge) {
            this.reset();
            for (const sample of current(family.name)?.samples ?? []) this.set(sample.labels, sample.value);
          },
        });
      }
      names.push(family.name);
    }
  } catch (error) {
    for (const name of names) registry.removeSingleMetric(name);
    throw error;
  }

  let registered = true;
  return {
    unregister() {
      if (!registered) return;
      registered = false;
      for (const name of names) registry.removeSingleMetric(name);
    },
  };
}
