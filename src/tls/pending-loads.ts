/**
 * The loader calls behind cache misses. Handshakes asking for the same name
 * share one call; a handshake waits at most `loadTimeoutMs`; a call whose
 * handshakes have all gone away is abandoned (its answer is not remembered);
 * a name the loader did not find is remembered for `negativeTtlMs`, so a
 * flood of unknown names costs one call per name, not one per handshake.
 */
import type { Clock, TimerHandle } from '../clock.js';
import { ClosedError, OnDemandBusyError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { CertificateMaterial } from './certificate-material.js';
import type { CertificateLoader } from './context-cache-options.js';

/** The counters of ContextCacheStats this part keeps. */
export interface LoadCounters {
  loads: number;
  loadFailures: number;
  loadTimeouts: number;
  negativeHits: number;
  loadsAbandoned: number;
}

export interface PendingLoadsOptions<T> {
  loader: CertificateLoader;
  loadTimeoutMs: number;
  negativeTtlMs: number;
  negativeCapacity: number;
  clock: Clock;
  logger: Logger | undefined;
  counters: LoadCounters;
  /** The cache's close signal, handed to every loader call. */
  signal: AbortSignal;
  /** Takes the loader's certificate into the cache; returns what the waiting handshakes get. May throw (a failed load). */
  accept(name: string, material: CertificateMaterial): T | undefined;
}

interface PendingLoad<T> {
  /** Resolves at the loader's answer or at the timeout, whichever is first. */
  result: Promise<T | undefined>;
  /** Set by cancel(): the answer must not bring the name back. */
  cancelled: boolean;
  /** Handshakes waiting with a signal that has not aborted. */
  waiters: number;
  /** A caller without a signal waits: the load is never abandoned. */
  pinned: boolean;
  abandon: AbortController;
}

export class PendingLoads<T> {
  readonly #opts: PendingLoadsOptions<T>;
  readonly #pending = new Map<string, PendingLoad<T>>();
  /** name -> time the negative answer expires; insertion order = age, for bounded FIFO trimming. */
  readonly #negative = new Map<string, number>();
  readonly #timers = new Set<TimerHandle>();

  constructor(options: PendingLoadsOptions<T>) {
    this.#opts = options;
  }

  /** The loader's answer for `name`, shared with other handshakes asking for it; undefined when there is none (in time). */
  load(name: string, signal: AbortSignal | undefined): Promise<T | undefined> {
    const existing = this.#pending.get(name);
    if (existing) return this.#wait(name, existing, signal);
    const negativeUntil = this.#negative.get(name);
    if (negativeUntil !== undefined) {
      if (negativeUntil > this.#opts.clock.now()) {
        this.#opts.counters.negativeHits++;
        return Promise.resolve(undefined);
      }
      this.#negative.delete(name);
    }

    this.#opts.counters.loads++;
    const pending: PendingLoad<T> = { result: Promise.resolve(undefined), cancelled: false, waiters: 0, pinned: false, abandon: new AbortController() };
    const answer = this.#call(name, pending);
    pending.result = new Promise<T | undefined>((resolve) => {
      const timer = this.#opts.clock.setTimer(() => {
        this.#timers.delete(timer);
        this.#opts.counters.loadTimeouts++;
        this.#opts.logger?.warn({ name, timeoutMs: this.#opts.loadTimeoutMs }, 'certificate load timed out; handshake continues without it');
        resolve(undefined);
      }, this.#opts.loadTimeoutMs);
      this.#timers.add(timer);
      void answer.then((entry) => {
        timer.cancel();
        this.#timers.delete(timer);
        resolve(entry);
      });
    });
    this.#pending.set(name, pending);
    return this.#wait(name, pending, signal);
  }

  /** The name was removed: a load in flight must not bring it back, and it is no longer known to be missing. */
  cancel(name: string): void {
    this.#negative.delete(name);
    const pending = this.#pending.get(name);
    if (pending) pending.cancelled = true;
  }

  /** A certificate for the name arrived: it is no longer missing. */
  forget(name: string): void {
    this.#negative.delete(name);
  }

  /** Abandons every load in flight (their answers are discarded) and cancels the timers. */
  abandonAll(): void {
    for (const pending of this.#pending.values()) pending.abandon.abort(new ClosedError('ContextCache'));
    for (const timer of this.#timers) timer.cancel();
    this.#timers.clear();
    this.#pending.clear();
    this.#negative.clear();
  }

  async #call(name: string, pending: PendingLoad<T>): Promise<T | undefined> {
    const closed = this.#opts.signal;
    // Aborted by close() as well (no AbortSignal.any: it would hang one dependent per load on the long-lived close signal).
    const abandoned = pending.abandon.signal;
    try {
      const material = await this.#opts.loader(name, { signal: closed, abandoned });
      if (closed.aborted || pending.cancelled) return undefined;
      if (material === undefined) {
        // An abandoned load has no answer worth remembering: the next handshake for the name asks again.
        if (!abandoned.aborted) this.#rememberMissing(name);
        return undefined;
      }
      return this.#opts.accept(name, material);
    } catch (error) {
      if (closed.aborted) return undefined;
      if (error instanceof OnDemandBusyError) {
        // Refused for lack of capacity, not for the name: nothing to remember, and at flood rate, nothing to warn about.
        this.#opts.logger?.debug({ name }, error.message);
        return undefined;
      }
      this.#opts.counters.loadFailures++;
      this.#rememberMissing(name);
      this.#opts.logger?.warn({ name, err: error }, 'certificate load failed');
      return undefined;
    } finally {
      if (this.#pending.get(name) === pending) this.#pending.delete(name);
    }
  }

  /** One handshake waits for a load; when the last one with a signal leaves (and none without), the load is abandoned. */
  #wait(name: string, pending: PendingLoad<T>, signal: AbortSignal | undefined): Promise<T | undefined> {
    if (signal === undefined) {
      pending.pinned = true;
      return pending.result;
    }
    const leave = (): void => {
      pending.waiters--;
      if (pending.waiters > 0 || pending.pinned || pending.abandon.signal.aborted) return;
      this.#opts.counters.loadsAbandoned++;
      // A handshake arriving from now on starts a load of its own instead of joining one that is stopping.
      if (this.#pending.get(name) === pending) this.#pending.delete(name);
      pending.abandon.abort();
    };
    pending.waiters++;
    if (signal.aborted) {
      leave();
      return pending.result;
    }
    signal.addEventListener('abort', leave, { once: true });
    void pending.result.then(() => signal.removeEventListener('abort', leave));
    return pending.result;
  }

  #rememberMissing(name: string): void {
    if (this.#opts.negativeTtlMs === 0) return;
    this.#negative.delete(name);
    while (this.#negative.size >= this.#opts.negativeCapacity) {
      const oldest = this.#negative.keys().next();
      if (oldest.done) break;
      this.#negative.delete(oldest.value);
    }
    this.#negative.set(name, this.#opts.clock.now() + this.#opts.negativeTtlMs);
  }
}
