/**
 * The machinery of managed certificates, wired once for a keeper: registry,
 * stored sets, failure policy, scheduler and obtain pipeline, handed as one
 * object to the flows that use several of them (manage, warm-up, handshake
 * loading). Nothing here reaches back to the keeper itself.
 */
import type { X509Certificate } from 'node:crypto';
import type { ResolvedConfig } from '../config/index.js';
import { DEFAULT_WARM_UP_YIELD_MS } from '../defaults.js';
import type { CpuOffload } from '../cpu/offload.js';
import type { TypedEmitter } from '../events.js';
import type { IssuerFactory } from '../issuers/factory.js';
import { Foreground } from '../limits/foreground.js';
import type { IssuerRateLimits } from '../limits/issuer-limits.js';
import type { Logger } from '../logger.js';
import { FailurePolicy } from '../renewal/failures.js';
import type { ManagedRecord } from '../renewal/managed-record.js';
import { EventLoopTurns, RenewalPacer } from '../renewal/pacer.js';
import { RenewalScheduler } from '../renewal/scheduler.js';
import type { Storage } from '../storage/types.js';
import type { ContextCache } from '../tls/context-cache.js';
import { Issuance } from './issue.js';
import { ObtainPipeline } from './obtain.js';
import { Registry } from './registry.js';
import { StoredSets } from './stored-sets.js';

export interface KeeperParts {
  readonly config: ResolvedConfig;
  readonly log: Logger;
  readonly events: TypedEmitter;
  readonly cache: ContextCache;
  readonly registry: Registry;
  readonly stored: StoredSets;
  readonly failures: FailurePolicy;
  readonly scheduler: RenewalScheduler;
  readonly pipeline: ObtainPipeline;
  /** Handshake loads in flight: background work yields to them. */
  readonly foreground: Foreground;
  /** Aborted when the keeper closes. */
  readonly signal: AbortSignal;
  closing(): boolean;
  /** Keeps background work visible to the keeper's close(), which waits for it (at most closeTimeoutMs). */
  track<T>(work: Promise<T>): Promise<T>;
}

/** Renewal or first obtain in the background; failures are reported and rescheduled, never thrown. */
export async function renewInBackground(parts: KeeperParts, record: ManagedRecord): Promise<void> {
  if (parts.closing()) return;
  try {
    await parts.pipeline.run(record, { renewal: record.serialNumber !== undefined, force: false, signal: parts.signal });
  } catch (error) {
    if (!parts.closing()) parts.log.debug({ err: error, names: record.names }, 'background obtain failed; rescheduled');
  } finally {
    parts.scheduler.scheduleNext(record);
  }
}

/** Starts a background renewal now, tracked for close(). */
export function renewSoon(parts: KeeperParts, record: ManagedRecord): void {
  parts.track(renewInBackground(parts, record));
}

export interface PartsInput {
  readonly config: ResolvedConfig;
  readonly log: Logger;
  readonly events: TypedEmitter;
  readonly storage: Storage;
  readonly cache: ContextCache;
  readonly cpu: CpuOffload;
  readonly issuers: IssuerFactory;
  readonly limits: IssuerRateLimits;
  readonly signal: AbortSignal;
  closing(): boolean;
  track<T>(work: Promise<T>): Promise<T>;
  /** A newly obtained certificate is served, with its chain already parsed. */
  onServedChain?(record: ManagedRecord, certificates: readonly X509Certificate[]): void;
}

export function createParts(input: PartsInput): KeeperParts {
  const { config, log: logger, events, storage, cache, signal, closing, track } = input;
  const { clock } = config;
  const registry = new Registry(config, input.issuers);
  // Assigned below: the scheduler hands due records to the flows, which need every part.
  let parts: KeeperParts | undefined;
  const scheduler = new RenewalScheduler({
    clock,
    renewalWindowRatio: config.renewalWindowRatio,
    storage,
    logger,
    signal,
    lookup: (certName) => registry.get(certName),
    renew: (record) => renewSoon(parts as KeeperParts, record),
    track,
    onAriWindow: (record, notice) =>
      events.emit('cert_renewal_window', {
        names: [...record.names],
        issuer: record.issuerKey,
        serialNumber: notice.serialNumber,
        windowStart: new Date(notice.windowStart),
        windowEnd: new Date(notice.windowEnd),
        selectedTime: new Date(notice.selectedTime),
        ...(notice.explanationUrl ? { explanationUrl: notice.explanationUrl } : {}),
        source: notice.source,
      }),
    clockJump: config.clockJump,
    onClockJump: (jump) => {
      logger.warn({ deltaMs: jump.deltaMs, from: jump.from.toISOString(), to: jump.to.toISOString() }, 'the wall clock jumped (sleep or clock change); every renewal was planned again');
      events.emit('clock_jump', jump);
    },
  });
  const stored = new StoredSets({
    storage,
    cache,
    events,
    clock,
    logger,
    defaultServerName: config.defaultServerName,
    onServed: (record) => scheduler.refreshAriSoon(record),
  });
  const failures = new FailurePolicy({ storage, clock, logger, events, closing });
  // CPU-heavy steps of obtaining, one per event-loop iteration, so handshakes are answered between them.
  const turns = new EventLoopTurns();
  const pacing = config.renewalPacing;
  const pipeline = new ObtainPipeline({
    storage,
    clock,
    logger,
    events,
    maxConcurrentOrders: config.maxConcurrentOrders,
    pacer: pacing
      ? new RenewalPacer({
          maxUtilization: pacing.maxEventLoopUtilization,
          minIdleCpus: pacing.minIdleCpus,
          busyRatePerSecond: pacing.renewalsPerSecondWhenBusy,
          checkIntervalMs: pacing.checkIntervalMs,
          idleBurst: pacing.idleBurst,
        })
      : undefined,
    turns,
    issuance: new Issuance({ storage, clock, logger, cpu: input.cpu, turns, limits: input.limits }),
    stored,
    failures,
    scheduler,
    track,
    onServedChain: input.onServedChain?.bind(input),
  });
  const foreground = new Foreground(clock, DEFAULT_WARM_UP_YIELD_MS);
  parts = { config, log: logger, events, cache, registry, stored, failures, scheduler, pipeline, foreground, signal, closing, track };
  return parts;
}
