/**
 * Time source. Everything that schedules or compares times takes a Clock, so
 * renewal is tested by moving time (FakeClock in certkeeper/testing), not by
 * sleeping.
 */
export interface TimerHandle {
  /** Cancels the timer; safe to call more than once. */
  cancel(): void;
}

export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Runs `fn` after `ms` milliseconds of this clock's time. The timer does not keep the process alive. */
  setTimer(fn: () => void, ms: number): TimerHandle;
  /**
   * Milliseconds from an arbitrary origin that never jump: what timers really count. When the wall clock
   * (now()) moves more than this between two looks, the host slept or its clock was set (see renewal/clock-jump.ts).
   * Optional: a clock without it gets no jump detection.
   */
  monotonic?(): number;
}

/** setTimeout accepts at most a signed 32-bit millisecond delay. */
export const MAX_TIMER_DELAY_MS = 2 ** 31 - 1;

export const systemClock: Clock = Object.freeze({
  now: () => Date.now(),
  setTimer(fn: () => void, ms: number): TimerHandle {
    const timer = setTimeout(fn, Math.min(Math.max(0, ms), MAX_TIMER_DELAY_MS));
    timer.unref();
    return { cancel: () => clearTimeout(timer) };
  },
  // CLOCK_MONOTONIC, as libuv's timers use: it stops while the host is suspended and is not moved by setting the date.
  monotonic: () => performance.now(),
});

/** Resolves after `ms` of the clock's time; rejects with the signal's reason when aborted. */
export function sleep(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = (): void => {
      handle.cancel();
      reject(signal?.reason);
    };
    const handle = clock.setTimer(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
