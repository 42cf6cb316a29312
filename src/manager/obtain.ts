/**
 * The one path to a certificate, for a first obtain and for a renewal alike:
 *
 *   coalesce (one order per name) -> honour the backoff -> pace renewals -> at most
 *   maxConcurrentOrders -> take the name's storage lock -> adopt what a peer stored
 *   meanwhile, or: read the shared failure state, let `cert_obtaining` veto, issue
 *   and store, serve -> release the lock.
 *
 * Every failure on the way counts as a failure of the name (reported and backed
 * off by the failure policy) except a lost lease: then a peer owns the name.
 */
import type { X509Certificate } from 'node:crypto';
import type { Clock } from '../clock.js';
import { AbortedError, LockLostError } from '../errors.js';
import type { TypedEmitter } from '../events.js';
import { Closable } from '../lifecycle.js';
import { Semaphore, Singleflight } from '../limits/concurrency.js';
import type { Logger } from '../logger.js';
import type { FailurePolicy } from '../renewal/failures.js';
import { servesRevoked, servesValidCertificate, type ManagedRecord } from '../renewal/managed-record.js';
import type { EventLoopTurns, RenewalPacer } from '../renewal/pacer.js';
import type { RenewalScheduler } from '../renewal/scheduler.js';
import type { RenewalSource } from '../renewal/renewal-policy.js';
import type { CertificateMeta, CertificateSet } from '../storage/certificates.js';
import { certificateLockName } from '../storage/layout.js';
import type { Storage } from '../storage/types.js';
import type { Issuance, IssuedSet } from './issue.js';
import type { StoredSets } from './stored-sets.js';

export interface ObtainRequest {
  /** A certificate is served already (reported as a renewal). */
  renewal: boolean;
  /** An operator's "now": ignores the backoff and a final refusal, renews a certificate that is not due. */
  force: boolean;
  signal: AbortSignal;
  /**
   * Called synchronously right before the issuer is asked (after the slot, the lock, the adoption check, the
   * veto, the key): the on-demand limiter debits its reserved token here, so its bucket bounds what reaches
   * the CA. Only the first caller's request of a shared run counts.
   */
  onOrderStart?: (() => void) | undefined;
}

/** `adopted`: a peer had stored a usable certificate meanwhile, and that is served now. */
export type ObtainOutcome = 'obtained' | 'adopted';

export interface ObtainPipelineOptions {
  storage: Storage;
  clock: Clock;
  logger: Logger;
  events: TypedEmitter;
  maxConcurrentOrders: number;
  /** Paces renewals of still-valid certificates while the server is busy; undefined when `renewalPacing: false`. */
  pacer: RenewalPacer | undefined;
  turns: EventLoopTurns;
  issuance: Issuance;
  stored: StoredSets;
  failures: FailurePolicy;
  scheduler: RenewalScheduler;
  /** Keeps each shared run visible to the owner's close(): it may outlive every caller that aborted. */
  track<T>(work: Promise<T>): Promise<T>;
  /** A newly obtained certificate is served, with its chain as the issuer parsed it (nothing parses it again). */
  onServedChain?: ((record: ManagedRecord, certificates: readonly X509Certificate[]) => void) | undefined;
}

export interface OrderStats {
  inFlight: number;
  peakInFlight: number;
  waiting: number;
  pacedRenewals: { admitted: number; admittedWhileBusy: number; waiting: number } | undefined;
}

export class ObtainPipeline extends Closable {
  readonly #o: ObtainPipelineOptions;
  readonly #inflight = new Singleflight<string, ObtainOutcome>();
  readonly #orders: Semaphore;

  constructor(options: ObtainPipelineOptions) {
    super('ObtainPipeline');
    this.#o = options;
    this.#orders = new Semaphore(options.maxConcurrentOrders);
  }

  /** Obtains (or adopts what another process stored) for the record and serves it; concurrent calls share one run. */
  run(record: ManagedRecord, request: ObtainRequest): Promise<ObtainOutcome> {
    const { failures, pacer, clock, track } = this.#o;
    const shared = async (): Promise<ObtainOutcome> => {
      // Every caller honours a running backoff and a final refusal (no I/O: what this process knows); only force skips them.
      if (!request.force) failures.throwIfBlocked(record);
      // A certificate still being served can wait for a quieter moment; a missing or expired one cannot.
      if (pacer && servesValidCertificate(record, clock.now())) await pacer.admit(request.signal);
      return this.#orders.run(() => this.#underLock(record, request), request.signal);
    };
    return this.#inflight.run(record.certName, () => track(shared()), request.signal);
  }

  /** Peak and current orders in flight, and the renewals the pacer admitted. */
  stats(): OrderStats {
    return {
      inFlight: this.#orders.inFlight,
      peakInFlight: this.#orders.peakInFlight,
      waiting: this.#orders.waiting,
      pacedRenewals: this.#o.pacer?.stats,
    };
  }

  /** Issues and stores a set for the record, without serving or scheduling it, and with no failure bookkeeping (obtain()). */
  async issueUnserved(record: ManagedRecord, signal: AbortSignal): Promise<CertificateSet> {
    const lockName = certificateLockName(record.certName);
    await this.#o.storage.lock(lockName, { signal });
    try {
      return (await this.#o.issuance.issueAndStore(record, signal, lockName)).set;
    } finally {
      await this.#unlock(lockName);
    }
  }

  /** True while a run for the name is in flight. */
  has(certName: string): boolean {
    return this.#inflight.has(certName);
  }

  /** Waits for the run in flight for the name (if any) to settle; `signal` stops only this wait. */
  async join(certName: string, signal: AbortSignal): Promise<void> {
    await this.#inflight.run(certName, () => Promise.resolve('adopted' as const), signal);
  }

  /** The runs in flight, by certificate name: the shared work itself, which outlives any caller's abort. */
  running(): Array<[string, Promise<ObtainOutcome>]> {
    return this.#inflight.running();
  }

  /** Waiting orders and paced renewals are refused; runs in flight see the owner's signal and settle. */
  protected async onClose(): Promise<void> {
    await Promise.all([this.#orders.close(), this.#o.pacer?.close()]);
  }

  async #underLock(record: ManagedRecord, request: ObtainRequest): Promise<ObtainOutcome> {
    const { storage, failures, scheduler, issuance } = this.#o;
    const { renewal, force, signal } = request;
    const lockName = certificateLockName(record.certName);
    try {
      await storage.lock(lockName, { signal });
    } catch (error) {
      // The lock itself could not be taken (a broken storage): a failure of the name too, or it is retried in a hot loop.
      await failures.note(record, error, renewal, signal);
      throw error;
    }
    // Announced once the lock is released: a listener that reacts (a renewal due at once, a peer) finds the name free.
    let announce: (() => void) | undefined;
    try {
      if (await this.#adoptStoredInstead(record, force)) return 'adopted';
      const sharedFailure = await failures.checkShared(record, force);
      this.#askForVeto(record, renewal);
      const why = renewal ? scheduler.why(record, force) : undefined;
      const issued = await issuance.issueAndStore(record, signal, lockName, request.onOrderStart);
      announce = await this.#serveObtained(record, issued, renewal, why, sharedFailure || record.backoff !== undefined, lockName);
      return 'obtained';
    } catch (error) {
      if (error instanceof LockLostError) {
        // Another process took this name over and stores its own result: not a failure of the stored certificate,
        // so no backoff (and no write to a sidecar we no longer own); the next attempt finds its certificate and adopts it.
        this.#o.logger.warn({ names: record.names, lock: lockName }, 'lock lost while obtaining; another process took over this name');
        failures.markAccounted(record, error);
      } else {
        // Recorded before the lock is released (and fenced by it), so the peer that takes it next reads this failure and backs off too.
        await failures.note(record, error, renewal, signal, lockName);
      }
      throw error;
    } finally {
      await this.#unlock(lockName);
      announce?.();
    }
  }

  /**
   * Another process may have obtained or renewed the certificate while we waited for the lock: then that set is
   * adopted instead of ordering. The sidecar decides; the whole set is read and verified only when it is adopted.
   */
  async #adoptStoredInstead(record: ManagedRecord, force: boolean): Promise<boolean> {
    const { stored, turns, scheduler } = this.#o;
    for (const issuer of record.settings.issuers) {
      const meta = await stored.readMeta(issuer.key, record.certName);
      if (!meta || !stored.usable(meta, record)) continue;
      if (this.#ordersAnyway(record, meta, force)) return false;
      await turns.turn();
      const set = await stored.readSet(issuer.key, record.certName);
      if (!set || !stored.usable(set.meta, record)) continue;
      await turns.turn();
      stored.adopt(record, set);
      record.finalError = false;
      scheduler.scheduleNext(record);
      return true;
    }
    return false;
  }

  /** Whether a usable stored set is to be replaced by a new order rather than adopted. */
  #ordersAnyway(record: ManagedRecord, meta: CertificateMeta, force: boolean): boolean {
    const served = record.serialNumber;
    // A peer renewed it while we waited: adopt that one, whatever was asked.
    if (served !== undefined && meta.serialNumber !== served) return false;
    if (servesRevoked(record)) return true;
    if (this.#o.scheduler.storedDueAt(meta) <= this.#o.clock.now()) return true;
    // Not due: only a forced renewal of the served certificate orders; a first obtain adopts what is stored.
    return force && served !== undefined;
  }

  /** `cert_obtaining` listeners may veto the order; a veto fails the attempt like any other failure. */
  #askForVeto(record: ManagedRecord, renewal: boolean): void {
    let vetoReason: string | undefined;
    this.#o.events.emit('cert_obtaining', {
      names: [...record.names],
      issuer: record.settings.issuers[0]?.key,
      renewal,
      veto: (reason: string) => {
        vetoReason = reason;
      },
    });
    if (vetoReason !== undefined) throw new AbortedError(`obtaining was vetoed: ${vetoReason}`);
  }

  async #serveObtained(
    record: ManagedRecord,
    { set, material, certificates }: IssuedSet,
    renewal: boolean,
    why: { reason: RenewalSource | 'forced' | 'revoked'; early: boolean; explanationUrl?: string | undefined } | undefined,
    hadFailures: boolean,
    lockName: string,
  ): Promise<() => void> {
    const { stored, failures, scheduler, clock, events, logger, turns } = this.#o;
    await turns.turn();
    stored.serve(record, set, material);
    if (certificates !== undefined) this.#o.onServedChain?.(record, certificates);
    await failures.clear(record, hadFailures, lockName);
    record.obtainedAt = clock.now();
    scheduler.scheduleNext(record);
    const payload = {
      names: [...record.names],
      issuer: set.meta.issuerKey,
      renewal,
      notBefore: new Date(set.meta.notBefore),
      notAfter: new Date(set.meta.notAfter),
      serialNumber: set.meta.serialNumber,
      ...(why ? { renewalReason: why.reason, replacedEarlyByAri: why.early } : {}),
      ...(why?.explanationUrl ? { explanationUrl: why.explanationUrl } : {}),
    };
    return () => {
      events.emit('cert_obtained', payload);
      if (renewal) events.emit('cert_renewed', payload);
      logger.info({ names: record.names, issuer: set.meta.issuerKey, notAfter: set.meta.notAfter, renewal }, renewal ? 'certificate renewed' : 'certificate obtained');
    };
  }

  async #unlock(lockName: string): Promise<void> {
    await this.#o.storage.unlock(lockName).catch((error: unknown) => this.#o.logger.warn({ err: error, lock: lockName }, 'could not release lock'));
  }
}
