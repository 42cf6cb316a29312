/**
 * One native 'abort' listener per AbortSignal, fanned out to any number of
 * callbacks. Node's EventTarget scans its listener list on every
 * addEventListener, so 100,000 waiters each adding a listener to one shared
 * signal (the keeper's close signal) cost O(n²): 30 s at start-up with
 * 100,000 names. Here adding and removing a callback is O(1).
 */
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
