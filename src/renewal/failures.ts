/**
 * Failure and backoff policy of managed names: what counts as a failure of a
 * name, how it is reported (log, `cert_failed`) and persisted (the shared
 * failure state and the certificate's sidecar, so a restart and every peer
 * back off too), and when a name must not be attempted yet.
 */
import type { Clock } from '../clock.js';
import { AcmeProblemError, BackoffError, ClosedError, LockLostError, type CertKeeperError } from '../errors.js';
import type { TypedEmitter } from '../events.js';
import type { Logger } from '../logger.js';
import { updateCertificateMeta } from '../storage/certificates.js';
import type { Storage } from '../storage/types.js';
import { recordFailure } from './backoff.js';
import {
  blockedBy,
  clearFailureState,
  hasFailureState,
  isKnownErrorCode,
  listFailureStates,
  loadFailureState,
  saveFailureState,
  type FailureState,
} from './failure-state.js';
import type { ManagedRecord } from './managed-record.js';
import { isEmergency } from './renewal-policy.js';

/** ACME problem types after which retrying the same order is pointless. */
const FINAL_PROBLEMS = new Set(['rejectedIdentifier', 'unsupportedIdentifier', 'caa', 'externalAccountRequired']);

export interface FailurePolicyOptions {
  storage: Storage;
  clock: Clock;
  logger: Logger;
  events: TypedEmitter;
  /** True once the owner is closing: work stopped by close() is no failure. */
  closing(): boolean;
}

export class FailurePolicy {
  readonly #options: FailurePolicyOptions;
  /**
   * Errors already reported as failures of a name (or that are not failures: a backoff still running), per name:
   * one error object can fail several names at once (a shared directory read refused by the CA).
   */
  readonly #accounted = new WeakMap<object, WeakSet<ManagedRecord>>();
  /** Names with a persisted failure state, as last listed (read by the background warm-up of large manageSync calls). */
  #listing: ReadonlySet<string> | undefined;

  constructor(options: FailurePolicyOptions) {
    this.#options = options;
  }

  /** The last listing of persisted failure states (undefined when none was made or it failed). */
  get listing(): ReadonlySet<string> | undefined {
    return this.#listing;
  }

  /**
   * Reports `error` as a failure of the record's name unless it already was, or is no failure: a backoff still
   * running, a lost lease (a peer owns the name), or work stopped by its signal or by close().
   */
  async note(record: ManagedRecord, error: unknown, renewal: boolean, signal: AbortSignal, heldLock?: string): Promise<void> {
    if (typeof error === 'object' && error !== null) {
      if (this.#accounted.get(error)?.has(record)) return;
      this.markAccounted(record, error);
    }
    if (error instanceof BackoffError || error instanceof LockLostError || error instanceof ClosedError) return;
    if (signal.aborted || this.#options.closing()) return;
    await this.#record(record, error, renewal, heldLock);
  }

  /** `error` is reported (or is no failure) for this record: a later note() of it does nothing. */
  markAccounted(record: ManagedRecord, error: object): void {
    let records = this.#accounted.get(error);
    if (!records) this.#accounted.set(error, (records = new WeakSet()));
    records.add(record);
  }

  /** Throws the error to report while what this process knows of the name forbids an attempt now (no I/O). */
  throwIfBlocked(record: ManagedRecord): void {
    this.#throwIfBlockedBy(record, record.backoff ? { ...record.backoff, final: record.finalError } : undefined);
  }

  /**
   * Reads the shared failure state under the name's lock: a peer (or an earlier run) may have failed meanwhile,
   * or been refused finally. Throws while it forbids an attempt (unless forced); returns whether there was one.
   */
  async checkShared(record: ManagedRecord, force: boolean): Promise<boolean> {
    const persisted = await loadFailureState(this.#options.storage, record.certName);
    if (persisted) this.#apply(record, persisted);
    if (!force) this.#throwIfBlockedBy(record, persisted);
    return persisted !== undefined;
  }

  /** After a success: the name starts again with no failures, here and (when it had some) in storage. */
  async clear(record: ManagedRecord, hadFailures: boolean, heldLock: string): Promise<void> {
    if (hadFailures) {
      await clearFailureState(this.#options.storage, record.certName, heldLock)
        .catch((e: unknown) => this.#options.logger.warn({ err: e, name: record.certName }, 'could not clear the persisted failure state'));
    }
    record.backoff = undefined;
    record.finalError = false;
  }

  /** One listing of the persisted failure states; undefined when it failed (then each name's state is read). */
  async list(): Promise<ReadonlySet<string> | undefined> {
    try {
      this.#listing = await listFailureStates(this.#options.storage);
    } catch (error) {
      this.#options.logger.warn({ err: error }, 'could not list persisted failure states; reading them name by name');
      this.#listing = undefined;
    }
    return this.#listing;
  }

  /**
   * Reads a name's persisted failure state (when `listed` says there is one, or without a listing) into its record;
   * returns the error to report while it forbids an attempt. An unreadable state is logged and ignored here: the
   * read under the lock before ordering fails the same way, and that counts as a failure of the name.
   */
  async restore(record: ManagedRecord, listed: ReadonlySet<string> | undefined): Promise<CertKeeperError | undefined> {
    if (listed !== undefined && !hasFailureState(listed, record.certName)) return undefined;
    let state: FailureState | undefined;
    try {
      state = await loadFailureState(this.#options.storage, record.certName);
    } catch (error) {
      this.#options.logger.warn({ err: error, name: record.certName }, 'could not read the persisted failure state');
      return undefined;
    }
    if (!state) return undefined;
    this.#apply(record, state);
    const blocked = blockedBy(record.certName, state, this.#options.clock.now());
    if (blocked) this.markAccounted(record, blocked);
    return blocked;
  }

  #throwIfBlockedBy(record: ManagedRecord, state: FailureState | undefined): void {
    const blocked = blockedBy(record.certName, state, this.#options.clock.now());
    if (!blocked) return;
    this.markAccounted(record, blocked);
    throw blocked;
  }

  #apply(record: ManagedRecord, state: FailureState): void {
    record.backoff = { failures: state.failures, nextAttemptAt: state.nextAttemptAt, ...(state.lastError ? { lastError: state.lastError } : {}) };
    record.finalError = state.final === true;
  }

  async #record(record: ManagedRecord, error: unknown, renewal: boolean, heldLock: string | undefined): Promise<void> {
    const { clock, logger, events, storage } = this.#options;
    const now = clock.now();
    const retryAt = (error as { retryAt?: unknown }).retryAt;
    record.backoff = recordFailure(record.backoff, error, now, {
      ...(record.notAfter !== undefined ? { notAfter: record.notAfter } : {}),
      ...(typeof retryAt === 'number' ? { retryAfter: retryAt } : {}),
    });
    record.finalError = error instanceof AcmeProblemError && FINAL_PROBLEMS.has(error.shortType);
    const emergency = record.notBefore !== undefined && record.notAfter !== undefined && isEmergency({ notBefore: record.notBefore, notAfter: record.notAfter }, now);
    const nextAttemptAt = record.finalError ? undefined : new Date(record.backoff.nextAttemptAt);
    const level = emergency ? 'error' : 'warn';
    logger[level]({ err: error, names: record.names, attempt: record.backoff.failures, nextAttemptAt, emergency }, renewal ? 'certificate renewal failed' : 'certificate could not be obtained');
    events.emit('cert_failed', {
      names: [...record.names],
      issuer: record.issuerKey,
      renewal,
      error: error as Error,
      attempt: record.backoff.failures,
      nextAttemptAt,
      emergency,
      serialNumber: record.serialNumber,
      notAfter: record.notAfter !== undefined ? new Date(record.notAfter) : undefined,
    });
    // Persisted for every name, so a restart and every peer sharing the storage honour it.
    const backoff = record.backoff;
    await saveFailureState(storage, record.certName, { ...backoff, ...(record.finalError ? { final: true } : {}) }, heldLock)
      .catch((e: unknown) => logger.warn({ err: e, name: record.certName }, 'could not persist the failure state'));
    // Also beside the certificate, where a lazily loaded set's sidecar brings it back.
    if (record.issuerKey !== undefined) {
      const lastError = backoff.lastError;
      await updateCertificateMeta(storage, record.issuerKey, record.certName, (meta) => ({
        ...meta,
        renewal: {
          ...meta.renewal,
          failures: backoff.failures,
          nextAttemptAt: new Date(backoff.nextAttemptAt).toISOString(),
          ...(lastError
            ? { lastError: { ...(isKnownErrorCode(lastError.code) ? { code: lastError.code } : {}), message: lastError.message, at: new Date(lastError.at).toISOString() } }
            : {}),
        },
      }), { lock: heldLock }).catch((e: unknown) => logger.warn({ err: e, name: record.certName }, 'could not persist renewal state'));
    }
  }
}
