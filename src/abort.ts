/**
 * One native 'abort' listener per AbortSignal, fanned out to any number of
 * callbacks. Node's EventTarget scans its listener list on every
 * addEventListener, so 100,000 waiters each adding a listener to one shared
 * signal (the keeper's close signal) cost O(n²): 30 s at start-up with
 * 100,000 names. Here adding and removing a callback is O(1).
 */
import { AbortedError, CertKeeperError } from './errors.js';

const fanouts = new WeakMap<AbortSignal, Set<() => void>>();

/** Calls `callback` once when `signal` aborts; returns a function that unsubscribes. The signal must not be aborted yet. */
export function onAbort(signal: AbortSignal, callback: () => void): () => void {
  let callbacks = fanouts.get(signal);
  if (!callbacks) {
    const set = new Set<() => void>();
    callbacks = set;
    fanouts.set(signal, set);
    signal.addEventListener(
      'abort',
      () => {
        fanouts.delete(signal);
        for (const cb of [...set]) cb();
        set.clear();
      },
      { once: true },
    );
  }
  const set = callbacks;
  set.add(callback);
  return () => {
    set.delete(callback);
  };
}

/**
 * Stops waiting for `promise` when the signal fires (the work itself must end
 * on its own, e.g. a request by its timeout): for APIs that take no signal.
 */
export function untilAborted<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise;
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => {
      const reason: unknown = signal.reason;
      reject(reason instanceof CertKeeperError ? reason : new AbortedError('The operation was aborted', { cause: reason }));
    };
    if (signal.aborted) {
      onAbort();
      promise.catch(() => undefined);
      return;
    }
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}
