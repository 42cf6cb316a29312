/**
 * Notices that the wall clock moved differently from the monotonic clock:
 * the host slept (the monotonic clock, which timers count, stood still while
 * the date moved on), or someone set the date. Timers armed before such a jump
 * fire late or early in wall time, so a certificate that became due (or
 * expired) while the host slept would wait for its old timer. The detector
 * compares the two clocks on a cheap periodic tick and whenever a watched
 * timer fires, and reports a divergence above the threshold once, so the
 * owner can plan again at once.
 */
import type { Clock, TimerHandle } from '../clock.js';
import { Closable } from '../lifecycle.js';

export interface ClockJump {
  /** Wall-clock movement not matched by monotonic time, in ms: positive forwards (a sleep), negative backwards. */
  deltaMs: number;
  /** Wall time at the previous look, and now. */
  from: Date;
  to: Date;
}

export interface ClockJumpDetectorOptions {
  clock: Clock;
  /** Smallest divergence reported (NTP slewing moves the clocks apart by milliseconds, never by this much). */
  thresholdMs: number;
  /** Monotonic time between two looks; the delay between waking up and noticing it. */
  checkIntervalMs: number;
  onJump(jump: ClockJump): void;
}

export class ClockJumpDetector extends Closable {
  readonly #o: ClockJumpDetectorOptions;
  readonly #monotonic: () => number;
  /** wall - monotonic at the previous look; constant while neither clock jumps. */
  #offset: number;
  #lastWall: number;
  #timer: TimerHandle | undefined;

  /** Undefined when the clock has no monotonic source (nothing to compare with). */
  static create(options: ClockJumpDetectorOptions): ClockJumpDetector | undefined {
    return typeof options.clock.monotonic === 'function' ? new ClockJumpDetector(options) : undefined;
  }

  private constructor(options: ClockJumpDetectorOptions) {
    super('ClockJumpDetector');
    this.#o = options;
    const clock = options.clock;
    this.#monotonic = () => (clock.monotonic as () => number).call(clock);
    this.#lastWall = clock.now();
    this.#offset = this.#lastWall - this.#monotonic();
    this.#arm();
  }

  /** Looks now; returns the jump it reported, if any. Cheap: two clock reads. */
  check(): ClockJump | undefined {
    if (this.closed) return undefined;
    const wall = this.#o.clock.now();
    const offset = wall - this.#monotonic();
    const deltaMs = offset - this.#offset;
    const from = this.#lastWall;
    // Compared with the previous look only, so slow drift never adds up to a jump.
    this.#offset = offset;
    this.#lastWall = wall;
    if (Math.abs(deltaMs) <= this.#o.thresholdMs) return undefined;
    const jump = { deltaMs, from: new Date(from), to: new Date(wall) };
    this.#o.onJump(jump);
    return jump;
  }

  /** The same clock, whose timers look for a jump after they run (a timer that fires is the first sign of a wake-up). */
  watched(): Clock {
    const clock = this.#o.clock;
    return {
      now: () => clock.now(),
      monotonic: () => this.#monotonic(),
      setTimer: (fn, ms) =>
        clock.setTimer(() => {
          try {
            fn();
          } finally {
            this.check();
          }
        }, ms),
    };
  }

  protected onClose(): void {
    this.#timer?.cancel();
    this.#timer = undefined;
  }

  #arm(): void {
    this.#timer = this.#o.clock.setTimer(() => {
      this.#timer = undefined;
      if (this.closed) return;
      this.check();
      this.#arm();
    }, this.#o.checkIntervalMs);
  }
}
