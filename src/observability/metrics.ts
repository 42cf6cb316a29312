/**
 * Prometheus metrics for a keeper, in the text exposition format (version
 * 0.0.4), written by hand: a handful of gauges and counters do not justify a
 * dependency, and the output can be served by any HTTP framework.
 *
 * Counters are driven by the keeper's typed events; gauges are computed from
 * the keeper's status at scrape time, so they are never stale.
 */
import { performance } from 'node:perf_hooks';
import { AcmeProblemError, CertKeeperError } from '../errors.js';
import type { EventName, Listener } from '../events.js';
import type { Storage } from '../storage/types.js';

/** Content-Type to serve `keeper.metrics()` with. */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

export interface CertificateGaugeSource {
  names: readonly string[];
  issuer: string | undefined;
  /** ACME profile of the certificate; the series carry a `profile` label only when there is one. */
  profile?: string | undefined;
  notAfter: Date | undefined;
  nextRenewalAt: Date | undefined;
  notBefore?: Date | undefined;
  /** When the renewal is planned (lifetime rule or ARI), whatever the failure backoff says. */
  renewalDueAt?: Date | undefined;
  /** The CA's suggested renewal window (RFC 9773), when it gave one. */
  ariWindow?: { start: Date; end: Date } | undefined;
  /** Failed attempts in a row (0 after a success). */
  failures?: number | undefined;
}

/** One metric family of a scrape, independent of the exposition format (for registries such as prom-client's). */
export interface MetricFamily {
  name: string;
  type: 'gauge' | 'counter';
  help: string;
  /** Every label name the family's samples may carry. */
  labelNames: readonly string[];
  samples: Sample[];
}

export interface CacheCounterSource {
  hits: number;
  misses: number;
}

export interface MetricsSnapshot {
  certificates: readonly CertificateGaugeSource[];
  cache: CacheCounterSource;
  /** Epoch ms (the keeper's clock). */
  now: number;
}

/** What certkeeper/prometheus and certkeeper/opentelemetry read: `CertKeeper` has it. */
export interface MetricFamiliesSource {
  metricFamilies(): MetricFamily[];
}

/** Anything with the keeper's typed `on()`. */
export interface EventSource {
  on<E extends EventName>(event: E, listener: Listener<E>): () => void;
}

type Labels = Record<string, string>;

class Counter {
  readonly #values = new Map<string, { labels: Labels; value: number }>();

  inc(labels: Labels, by = 1): void {
    const key = JSON.stringify(labels);
    const entry = this.#values.get(key);
    if (entry) entry.value += by;
    else this.#values.set(key, { labels, value: by });
  }

  samples(): { labels: Labels; value: number }[] {
    return [...this.#values.values()];
  }
}

/** The counters of one keeper, and the rendering of a scrape. */
export class KeeperMetrics {
  readonly #obtains = new Counter();
  readonly #renewals = new Counter();
  readonly #failures = new Counter();
  readonly #onDemand = new Counter();
  #lockWaits = 0;
  #lockWaitSeconds = 0;

  /** Subscribes the counters to a keeper's events; returns a function that unsubscribes. */
  observe(source: EventSource): () => void {
    const offs = [
      source.on('cert_obtained', (event) => {
        (event.renewal ? this.#renewals : this.#obtains).inc({ issuer: event.issuer ?? 'unknown', result: 'success' });
      }),
      source.on('cert_failed', (event) => {
        const issuer = event.issuer ?? 'unknown';
        (event.renewal ? this.#renewals : this.#obtains).inc({ issuer, result: 'failure' });
        this.#failures.inc({ issuer, reason: failureReason(event.error) });
      }),
      source.on('on_demand_denied', (event) => this.#onDemand.inc({ decision: event.rateLimited === true ? 'rate_limited' : 'denied' })),
    ];
    return () => {
      for (const off of offs) off();
    };
  }

  /** Counts one storage lock acquisition and the time spent waiting for it. */
  recordLockWait(seconds: number): void {
    this.#lockWaits++;
    this.#lockWaitSeconds += Math.max(0, seconds);
  }

  /**
   * The same storage with `lock()` timed. A Proxy keeps the object's identity
   * for `instanceof` and its optional capabilities (tryLock, assertLockHeld);
   * other methods run on the original object, whose private fields a proxy
   * receiver could not reach.
   */
  instrumentStorage<S extends Storage>(storage: S): S {
    const record = (seconds: number): void => this.recordLockWait(seconds);
    return new Proxy(storage, {
      get(target, property) {
        const value: unknown = Reflect.get(target, property, target);
        if (property === 'lock' && typeof value === 'function') {
          return async (...args: Parameters<Storage['lock']>): Promise<void> => {
            const started = performance.now();
            await (value as Storage['lock']).apply(target, args);
            record((performance.now() - started) / 1000);
          };
        }
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
  }

  /** One scrape in Prometheus text format. */
  render(snapshot: MetricsSnapshot): string {
    const out: string[] = [];
    for (const f of this.families(snapshot)) family(out, f.name, f.type, f.help, f.samples);
    return out.join('');
  }

  /** One scrape as metric families; `render()` and the registry integrations share it, so names and labels agree. */
  families(snapshot: MetricsSnapshot): MetricFamily[] {
    const certificates = snapshot.certificates.filter((c) => c.names.length > 0);
    const perCertificate = (pick: (c: CertificateGaugeSource) => number | undefined): Sample[] =>
      certificates.flatMap((c) => {
        const value = pick(c);
        const labels: Labels = { name: c.names[0] as string, issuer: c.issuer ?? 'unknown', ...(c.profile !== undefined ? { profile: c.profile } : {}) };
        return value === undefined ? [] : [{ labels, value }];
      });
    const seconds = (date: Date | undefined): number | undefined => (date ? date.getTime() / 1000 : undefined);
    const cert = (name: string, help: string, pick: (c: CertificateGaugeSource) => number | undefined): MetricFamily =>
      ({ name, type: 'gauge', help, labelNames: CERTIFICATE_LABELS, samples: perCertificate(pick) });
    const counter = (name: string, help: string, labelNames: readonly string[], samples: Sample[]): MetricFamily =>
      ({ name, type: 'counter', help, labelNames, samples });
    return [
      cert('certkeeper_certificate_expiry_seconds', 'Seconds until the certificate expires (negative once expired).',
        (c) => (c.notAfter ? (c.notAfter.getTime() - snapshot.now) / 1000 : undefined)),
      cert('certkeeper_certificate_not_after_timestamp_seconds', 'Expiry of the certificate, in seconds since the Unix epoch.', (c) => seconds(c.notAfter)),
      cert('certkeeper_certificate_not_before_timestamp_seconds', 'Start of the certificate\'s validity, in seconds since the Unix epoch.', (c) => seconds(c.notBefore)),
      cert('certkeeper_certificate_next_renewal_seconds', 'Seconds until the next scheduled renewal or retry (negative when overdue).',
        (c) => (c.nextRenewalAt ? (c.nextRenewalAt.getTime() - snapshot.now) / 1000 : undefined)),
      cert('certkeeper_certificate_renewal_due_timestamp_seconds', 'When renewal is planned (lifetime rule or ARI window), in seconds since the Unix epoch.', (c) => seconds(c.renewalDueAt)),
      cert('certkeeper_certificate_ari_window_start_timestamp_seconds', 'Start of the renewal window suggested by the CA (ARI), in seconds since the Unix epoch.', (c) => seconds(c.ariWindow?.start)),
      cert('certkeeper_certificate_ari_window_end_timestamp_seconds', 'End of the renewal window suggested by the CA (ARI), in seconds since the Unix epoch.', (c) => seconds(c.ariWindow?.end)),
      cert('certkeeper_certificate_consecutive_failures', 'Failed obtain or renewal attempts in a row for the certificate (0 after a success).', (c) => c.failures),
      { name: 'certkeeper_managed_certificates', type: 'gauge', help: 'Certificates managed by this keeper.', labelNames: [], samples: [{ labels: {}, value: certificates.length }] },
      counter('certkeeper_obtains_total', 'Attempts to obtain a new certificate, by issuer and result.', ['issuer', 'result'], this.#obtains.samples()),
      counter('certkeeper_renewals_total', 'Attempts to renew a certificate, by issuer and result.', ['issuer', 'result'], this.#renewals.samples()),
      counter('certkeeper_failures_total', 'Failed obtains and renewals, by issuer and reason (error code or ACME problem type).', ['issuer', 'reason'], this.#failures.samples()),
      counter('certkeeper_on_demand_decisions_total', 'On-demand issuance decisions made during handshakes.', ['decision'], this.#onDemand.samples()),
      counter('certkeeper_sni_cache_hits_total', 'TLS handshakes answered from the certificate cache.', [], [{ labels: {}, value: snapshot.cache.hits }]),
      counter('certkeeper_sni_cache_misses_total', 'TLS handshakes whose name was not in the certificate cache.', [], [{ labels: {}, value: snapshot.cache.misses }]),
      counter('certkeeper_storage_lock_waits_total', 'Storage locks acquired.', [], [{ labels: {}, value: this.#lockWaits }]),
      counter('certkeeper_storage_lock_wait_seconds_total', 'Time spent waiting to acquire storage locks.', [], [{ labels: {}, value: this.#lockWaitSeconds }]),
    ];
  }
}

const CERTIFICATE_LABELS = ['name', 'issuer', 'profile'] as const;

export interface Sample {
  labels: Labels;
  value: number;
}

function family(out: string[], name: string, type: 'gauge' | 'counter', help: string, samples: readonly Sample[]): void {
  out.push(`# HELP ${name} ${escapeHelp(help)}\n# TYPE ${name} ${type}\n`);
  for (const sample of samples) out.push(`${name}${formatLabels(sample.labels)} ${formatValue(sample.value)}\n`);
}

function formatLabels(labels: Labels): string {
  const entries = Object.entries(labels);
  if (entries.length === 0) return '';
  return `{${entries.map(([key, value]) => `${key}="${escapeLabelValue(value)}"`).join(',')}}`;
}

/** Label values escape backslash, double quote and line feed (exposition format spec). */
export function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/** HELP text escapes backslash and line feed only. */
function escapeHelp(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}

/** A bounded label value: the ACME problem type, or the certkeeper error code. */
function failureReason(error: Error): string {
  if (error instanceof AcmeProblemError) return `acme:${error.shortType}`;
  if (error instanceof CertKeeperError) return error.code;
  return 'unknown';
}
