/**
 * First come, first served waiters for the limiting primitives (Semaphore,
 * TokenBucket, RenewalPacer): a waiter whose AbortSignal aborts leaves the
 * queue at once (O(1): a Set keeps insertion order), and close() rejects
 * whoever still waits.
 */
import { onAbort } from '../abort.js';
import { AbortedError } from '../errors.js';

interface Waiter {
  resolve: () => void;
  reject: (error: unknown) => void;
  /** Unsubscribes from the caller's signal. */
  detach: (() => void) | undefined;
}

export class WaitQueue {
  readonly #waiters = new Set<Waiter>();
  readonly #abortMessage: string;
  readonly #onAbandoned: (() => void) | undefined;

  /** `abortMessage` names what was waited for; `onAbandoned` runs when an aborted waiter leaves the queue. */
  constructor(abortMessage: string, onAbandoned?: () => void) {
    this.#abortMessage = abortMessage;
    this.#onAbandoned = onAbandoned;
  }

  get size(): number {
    return this.#waiters.size;
  }

  /** Joins the end of the queue; rejects with AbortedError when `signal` aborts first (or already has). */
  wait(signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(new AbortedError(this.#abortMessage, { cause: signal.reason }));
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = { resolve, reject, detach: undefined };
      if (signal) {
        waiter.detach = onAbort(signal, () => {
          this.#waiters.delete(waiter);
          reject(new AbortedError(this.#abortMessage, { cause: signal.reason }));
          this.#onAbandoned?.();
        });
      }
      this.#waiters.add(waiter);
    });
  }

  /** Lets the oldest waiter go; false when nobody waits. */
  releaseNext(): boolean {
    const next = this.#waiters.values().next().value as Waiter | undefined;
    if (!next) return false;
    this.#waiters.delete(next);
    next.detach?.();
    next.resolve();
    return true;
  }

  /** Rejects every waiter with `error` and empties the queue. */
  rejectAll(error: Error): void {
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const waiter of waiters) {
      waiter.detach?.();
      waiter.reject(error);
    }
  }
}
