import { onAbort } from '../abort.js';
import { AbortedError, ClosedError, InvalidOptionError } from '../errors.js';
import { WaitQueue } from './wait-queue.js';
import { Closable } from '../lifecycle.js';

/**
 * At most `max` tasks at once; the rest wait first-come, first-served.
 * `inFlight` and `peakInFlight` let tests count concurrent orders.
 */
export class Semaphore extends Closable {
  readonly max: number;
  #inFlight = 0;
  #peak = 0;
  readonly #waiters = new WaitQueue('Waiting for a free slot was aborted');

  constructor(max: number) {
    super('Semaphore');
    if (!(max === Number.POSITIVE_INFINITY || (Number.isInteger(max) && max >= 1))) {
      throw new InvalidOptionError('maxConcurrentOrders', 'must be an integer >= 1 or Infinity');
    }
    this.max = max;
  }

  /** Tasks running now. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** The most tasks that ever ran at once. */
  get peakInFlight(): number {
    return this.#peak;
  }

  /** Tasks waiting for a slot. */
  get waiting(): number {
    return this.#waiters.size;
  }

  /**
   * Runs `fn` once a slot is free and releases the slot when it settles.
   * Aborting `signal` while waiting gives up the place in the queue; once
   * running, `fn` gets the signal and decides itself.
   */
  async run<T>(fn: (signal?: AbortSignal) => Promise<T> | T, signal?: AbortSignal): Promise<T> {
    await this.#acquire(signal);
    try {
      return await fn(signal);
    } finally {
      this.#release();
    }
  }

  /** Rejects every waiter with ClosedError; running tasks finish. Idempotent. */
  protected onClose(): void {
    this.#waiters.rejectAll(new ClosedError('Semaphore'));
  }

  #acquire(signal: AbortSignal | undefined): Promise<void> {
    if (this.closed) return Promise.reject(new ClosedError('Semaphore'));
    if (signal?.aborted) return Promise.reject(new AbortedError('Waiting for a free slot was aborted', { cause: signal.reason }));
    if (this.#inFlight < this.max && this.#waiters.size === 0) {
      this.#take();
      return Promise.resolve();
    }
    return this.#waiters.wait(signal);
  }

  #take(): void {
    this.#inFlight++;
    if (this.#inFlight > this.#peak) this.#peak = this.#inFlight;
  }

  #release(): void {
    this.#inFlight--;
    // Hand the slot straight to the next waiter so a newcomer cannot jump the queue.
    if (this.#waiters.size > 0) {
      this.#take();
      this.#waiters.releaseNext();
    }
  }
}

/**
 * Coalesces concurrent calls for one key: while a call for `key` runs, later
 * callers get the same promise instead of starting another (50 handshakes for
 * one new name make one order). The key is forgotten once the call settles.
 */
export class Singleflight<K, V> {
  readonly #calls = new Map<K, Promise<V>>();

  /** Calls in progress. */
  get size(): number {
    return this.#calls.size;
  }

  has(key: K): boolean {
    return this.#calls.has(key);
  }

  /** The calls still running, by key: the shared work itself, which outlives any caller's abort. */
  running(): Array<[K, Promise<V>]> {
    return [...this.#calls];
  }

  /**
   * Runs `fn` unless a call for `key` is already running, and resolves with
   * that call's outcome. A caller's `signal` only stops that caller waiting
   * (AbortedError); the shared work carries on for the others.
   */
  run(key: K, fn: () => Promise<V>, signal?: AbortSignal): Promise<V> {
    if (signal?.aborted) return Promise.reject(new AbortedError('The operation was aborted', { cause: signal.reason }));
    let call = this.#calls.get(key);
    if (!call) {
      // fn starts on the next microtask, so even a synchronous throw settles
      // after the entry is stored and is then removed by the finally below.
      const started: Promise<V> = Promise.resolve()
        .then(fn)
        .finally(() => {
          if (this.#calls.get(key) === started) this.#calls.delete(key);
        });
      call = started;
      this.#calls.set(key, call);
    }
    return signal ? raceAbort(call, signal) : call;
  }
}

function raceAbort<V>(promise: Promise<V>, signal: AbortSignal): Promise<V> {
  return new Promise<V>((resolve, reject) => {
    const unsubscribe = onAbort(signal, () => reject(new AbortedError('The operation was aborted', { cause: signal.reason })));
    promise.then(
      (value) => {
        unsubscribe();
        resolve(value);
      },
      (error: unknown) => {
        unsubscribe();
        reject(error);
      },
    );
  });
}

