/**
 * Handshakes come before background work. A handshake waiting for its certificate from storage counts
 * as foreground work while its load runs; background loops (the warm-up after a large manageSync)
 * ask `yieldTo()` before each step and wait until no load is in flight, so the storage round trip
 * and the CPU go to the handshake first. The wait is capped, so a keeper under constant load still
 * makes progress with its background work, only more slowly.
 */
import type { Clock } from '../clock.js';

export class Foreground {
  readonly #clock: Clock;
  readonly #maxWaitMs: number;
  #inFlight = 0;
  #idle: { promise: Promise<void>; resolve: () => void } | undefined;

  constructor(clock: Clock, maxWaitMs: number) {
    this.#clock = clock;
    this.#maxWaitMs = maxWaitMs;
  }

  /** Foreground work in flight now. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** Marks foreground work running; returns the function that ends it (call once). */
  enter(): () => void {
    this.#inFlight++;
    let left = false;
    return () => {
      if (left) return;
      left = true;
      if (--this.#inFlight === 0 && this.#idle) {
        this.#idle.resolve();
        this.#idle = undefined;
      }
    };
  }

  /** Resolves at once when nothing is in flight, else when it all ends or after the cap, whichever is first. */
  yieldTo(): Promise<void> {
    if (this.#inFlight === 0) return Promise.resolve();
    if (!this.#idle) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => (resolve = r));
      this.#idle = { promise, resolve };
    }
    const idle = this.#idle.promise;
    return new Promise<void>((resolve) => {
      const timer = this.#clock.setTimer(resolve, this.#maxWaitMs);
      void idle.then(() => {
        timer.cancel();
        resolve();
      });
    });
  }
}
