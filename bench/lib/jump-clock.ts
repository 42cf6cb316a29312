/**
 * A clock that runs on real time and can jump ahead: pending timers are
 * re-armed against the new time, so those now due fire at once. The drill
 * benchmark jumps a keeper past the CA's Retry-After instead of waiting an hour
 * (ACME waits run on real time anyway; this clock drives scheduling only).
 */
import { MAX_TIMER_DELAY_MS, type Clock, type TimerHandle } from '../../src/clock.js';

interface Pending {
  at: number;
  fn: () => void;
  handle: NodeJS.Timeout | undefined;
}

export class JumpClock implements Clock {
  #offset = 0;
  readonly #pending = new Set<Pending>();

  now(): number {
    return Date.now() + this.#offset;
  }

  setTimer(fn: () => void, ms: number): TimerHandle {
    const timer: Pending = { at: this.now() + Math.max(0, ms), fn, handle: undefined };
    this.#pending.add(timer);
    this.#arm(timer);
    return {
      cancel: () => {
        clearTimeout(timer.handle);
        this.#pending.delete(timer);
      },
    };
  }

  /** Moves this clock `ms` ahead; timers that became due fire on the next turns of the event loop. */
  jump(ms: number): void {
    this.#offset += ms;
    for (const timer of this.#pending) this.#arm(timer);
  }

  #arm(timer: Pending): void {
    clearTimeout(timer.handle);
    timer.handle = setTimeout(() => {
      // A delay longer than setTimeout allows fires early: wait again.
      if (this.now() < timer.at) return this.#arm(timer);
      this.#pending.delete(timer);
      timer.fn();
    }, Math.min(MAX_TIMER_DELAY_MS, Math.max(0, timer.at - this.now())));
    timer.handle.unref();
  }
}
