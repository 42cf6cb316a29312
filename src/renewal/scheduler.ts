/**
 * When each managed certificate is next worked on. Two queues, one timer
 * each: renewal due times (lifetime rule, ARI window or emergency point,
 * pushed back by a failure backoff) and ARI refreshes (when to ask the CA for
 * its suggested window again). Nothing here orders a certificate: a due
 * renewal is handed to `renew`, a due refresh to refreshAri().
 */
import type { Clock } from '../clock.js';
import type { Logger } from '../logger.js';
import { Closable } from '../lifecycle.js';
import type { CertificateMeta } from '../storage/certificates.js';
import type { Storage } from '../storage/types.js';
import { refreshAri, type AriWindowNotice } from './ari-refresh.js';
import { ClockJumpDetector, type ClockJump } from './clock-jump.js';
import { DueQueue, type DueQueueStats } from './due-queue.js';
import type { AriWindowMs, ManagedRecord } from './managed-record.js';
import { ariIssuerOf, currentAri, replaceExpiredAtOnce, servesRevoked } from './managed-record.js';
import { planRenewal, renewalDueTime, seededRandom, storedRenewalDueAt, type RenewalPlan, type RenewalSource } from './renewal-policy.js';

/** A freshly obtained certificate is not renewed again sooner than this (or a tenth of its lifetime, if shorter). */
export const MIN_RENEWAL_INTERVAL_MS = 3_600_000;

/**
 * The next attempt: not before the failure backoff ends, and not before the renewal is due. A failed forced
 * renewal of a certificate that is not due waits for its due time instead of retrying when the backoff ends
 * (and then finding, under the lock, that there is nothing to do and re-reading the same set in a loop).
 */
export function nextAttemptAt(renewalDueAt: number, backoffUntil: number | undefined): number {
  return backoffUntil === undefined ? renewalDueAt : Math.max(backoffUntil, renewalDueAt);
}

export interface RenewalSchedulerOptions {
  clock: Clock;
  renewalWindowRatio: number;
  storage: Storage;
  logger: Logger;
  /** Aborts ARI requests on close. */
  signal: AbortSignal;
  /** The record currently managed under a certificate name (a record that was unmanaged is not scheduled). */
  lookup(certName: string): ManagedRecord | undefined;
  /** A renewal (or first obtain, or retry) is due. */
  renew(record: ManagedRecord): void;
  /** Keeps background work visible to the owner's close(). */
  track<T>(work: Promise<T>): Promise<T>;
  /** The served certificate got a new ARI window (from the CA or a peer's stored answer). */
  onAriWindow?(record: ManagedRecord, notice: AriWindowNotice): void;
  /** Wall-clock jump detection (needs clock.monotonic); false turns it off. */
  clockJump?: { thresholdMs: number; checkIntervalMs: number } | false | undefined;
  /** Told after every due time was planned again because of a jump. */
  onClockJump?: ((jump: ClockJump) => void) | undefined;
}

export class RenewalScheduler extends Closable {
  readonly #options: RenewalSchedulerOptions;
  readonly #renewals: DueQueue<string>;
  readonly #ariRefreshes: DueQueue<string>;
  readonly #jumps: ClockJumpDetector | undefined;

  constructor(options: RenewalSchedulerOptions) {
    super('RenewalScheduler');
    this.#options = options;
    const jumpSettings = options.clockJump;
    this.#jumps = jumpSettings
      ? ClockJumpDetector.create({ clock: options.clock, ...jumpSettings, onJump: (jump) => this.#replan(jump) })
      : undefined;
    // The queues' timers look for a jump each time they fire.
    const queueClock = this.#jumps?.watched() ?? options.clock;
    const onError = (error: unknown, key: string): void => options.logger.error({ err: error, key }, 'scheduled work failed to start');
    this.#renewals = new DueQueue<string>({
      clock: queueClock,
      onDue: (certName) => {
        const record = options.lookup(certName);
        if (record) options.renew(record);
      },
      onError,
    });
    this.#ariRefreshes = new DueQueue<string>({
      clock: queueClock,
      onDue: (certName) => {
        const record = options.lookup(certName);
        if (record) options.track(this.#refreshAri(record));
      },
      onError,
    });
  }

  /** When renewal of the served certificate is planned and what decided it; undefined when nothing is served. */
  plan(record: ManagedRecord): RenewalPlan | undefined {
    if (record.notBefore === undefined || record.notAfter === undefined) return undefined;
    // Only a window given for the served certificate counts: a replaced one's would renew the new one again.
    const ari = currentAri(record);
    return this.#plan(record.notBefore, record.notAfter, seedOf(record), ari?.window, ari?.selectedTime);
  }

  /** Due time of a stored certificate, computed exactly as for a served one (same jitter seed), so both agree. */
  storedDueAt(meta: CertificateMeta): number {
    return storedRenewalDueAt(meta, this.#options.renewalWindowRatio);
  }

  /** Time to (re)try: renewal due, and no failure backoff (possibly loaded from storage) still running. */
  isDue(record: ManagedRecord): boolean {
    const now = this.#options.clock.now();
    if (record.backoff !== undefined && record.backoff.nextAttemptAt > now) return false;
    if (servesRevoked(record)) return true;
    const dueAt = this.plan(record)?.dueAt;
    return dueAt === undefined || dueAt <= now;
  }

  /** Why the served certificate is being renewed, and whether ARI brought it forward of the lifetime rule. */
  why(record: ManagedRecord, force: boolean): { reason: RenewalSource | 'forced' | 'revoked'; early: boolean; explanationUrl?: string | undefined } | undefined {
    if (force) return { reason: 'forced', early: false };
    if (servesRevoked(record)) return { reason: 'revoked', early: false };
    if (record.notBefore === undefined || record.notAfter === undefined) return undefined;
    const plan = this.plan(record) as RenewalPlan;
    const random = (): number => seededRandom(seedOf(record));
    const lifetimeDue = renewalDueTime({ notBefore: record.notBefore, notAfter: record.notAfter, ratio: this.#options.renewalWindowRatio, random });
    const explanationUrl = plan.source === 'ari' ? currentAri(record)?.window.explanationUrl : undefined;
    return { reason: plan.source, early: plan.source === 'ari' && plan.dueAt < lifetimeDue, ...(explanationUrl ? { explanationUrl } : {}) };
  }

  /** When the next attempt is queued, if it is. */
  nextAt(certName: string): number | undefined {
    return this.#renewals.dueAt(certName);
  }

  /** Queues the record's next attempt (nothing for a final refusal: that waits for a forced renew). */
  scheduleNext(record: ManagedRecord): void {
    if (this.closed || this.#options.lookup(record.certName) !== record) return;
    if (record.finalError) {
      this.#renewals.unschedule(record.certName);
      return;
    }
    let renewalAt = this.plan(record)?.dueAt ?? this.#options.clock.now();
    // A revoked certificate is replaced now, however young: its successor is not revoked, so there is no loop to guard against.
    if (servesRevoked(record)) renewalAt = this.#options.clock.now();
    else if (record.obtainedAt !== undefined && record.notBefore !== undefined && record.notAfter !== undefined && !replaceExpiredAtOnce(record, this.#options.clock.now())) {
      // A certificate that is due the moment it arrives (CA clock skew, an ARI window in the past) must not renew in a loop.
      const minimumAge = Math.min(MIN_RENEWAL_INTERVAL_MS, (record.notAfter - record.notBefore) / 10);
      renewalAt = Math.max(renewalAt, record.obtainedAt + minimumAge);
    }
    this.#renewals.schedule(record.certName, nextAttemptAt(renewalAt, record.backoff?.nextAttemptAt));
  }

  /** Asks the CA for the served certificate's renewal window on the next tick (when its issuer supports ARI). */
  refreshAriSoon(record: ManagedRecord): void {
    if (this.closed || ariIssuerOf(record) === undefined) return;
    this.#ariRefreshes.schedule(record.certName, this.#options.clock.now());
  }

  /** Per queue: how many names are scheduled, and how many heap entries its ticks looked at (1 per idle tick). */
  stats(): { renewals: DueQueueStats & { size: number }; ariRefreshes: DueQueueStats & { size: number } } {
    return { renewals: { ...this.#renewals.stats, size: this.#renewals.size }, ariRefreshes: { ...this.#ariRefreshes.stats, size: this.#ariRefreshes.size } };
  }

  /** Forgets both schedules of a name. */
  unschedule(certName: string): void {
    this.#renewals.unschedule(certName);
    this.#ariRefreshes.unschedule(certName);
  }

  /** Compares wall and monotonic time now (a caller that noticed a sign of a jump); true when one was found. */
  checkClock(): boolean {
    return this.#jumps?.check() !== undefined;
  }

  protected async onClose(): Promise<void> {
    await Promise.all([this.#renewals.close(), this.#ariRefreshes.close(), this.#jumps?.close()]);
  }

  /** Due times are wall-clock times and stay right; the timers' delays were measured before the jump and are re-armed. */
  #replan(jump: ClockJump): void {
    if (this.closed) return;
    this.#renewals.rearm();
    this.#ariRefreshes.rearm();
    this.#options.onClockJump?.(jump);
  }

  async #refreshAri(record: ManagedRecord): Promise<void> {
    const { clock, renewalWindowRatio, storage, logger, signal } = this.#options;
    const outcome = await refreshAri(record, {
      clock,
      renewalWindowRatio,
      storage,
      logger,
      signal,
      reschedule: () => this.scheduleNext(record),
      askAgainAt: (at) => {
        if (!this.closed) this.#ariRefreshes.schedule(record.certName, at);
      },
      // A peer stored a successor: the renewal path adopts it (no order) and its refresh is queued when served.
      peerReplaced: () => {
        if (!this.closed && this.#options.lookup(record.certName) === record) this.#options.renew(record);
      },
      onWindow: (notice) => this.#options.onAriWindow?.(record, notice),
    });
    logger.debug({ names: record.names, outcome, next: this.#ariRefreshes.dueAt(record.certName) }, 'ARI refresh');
  }

  #plan(notBefore: number, notAfter: number, seed: string, ari: AriWindowMs | undefined, ariSelectedTime: number | undefined): RenewalPlan {
    return planRenewal({
      notBefore,
      notAfter,
      ratio: this.#options.renewalWindowRatio,
      // Jitter seeded by the serial: stable across restarts and across processes sharing storage.
      random: () => seededRandom(seed),
      ...(ari ? { ari, ariSelectedTime } : {}),
    });
  }
}

function seedOf(record: ManagedRecord): string {
  return record.serialNumber ?? record.certName;
}
