import type { Clock, TimerHandle } from '../clock.js';

interface PendingTimer {
  at: number;
  seq: number;
  fn: () => void;
  cancelled: boolean;
}

const noop = (): void => {};

/**
 * A clock whose time only moves when told. Timers fire, in due order, during
 * advance()/set(); promise callbacks scheduled by fired timers are given a
 * chance to run between timers.
 */
export class FakeClock implements Clock {
  #now: number;
  /** Moves with advance()/set(), not with jump(). */
  #monotonic = 0;
  #seq = 0;
  #timers: PendingTimer[] = [];
  #cancelled = 0;

  /**
   * Present only with `{ monotonic: true }`: a keeper then looks for clock jumps on a tick every second of
   * fake time, which makes advancing by days slow (so it is opt-in).
   */
  readonly monotonic?: () => number;

  constructor(start: number | Date = Date.UTC(2026, 0, 1), options: { monotonic?: boolean } = {}) {
    this.#now = typeof start === 'number' ? start : start.getTime();
    if (options.monotonic === true) this.monotonic = () => this.#monotonic;
  }

  now(): number {
    return this.#now;
  }

  setTimer(fn: () => void, ms: number): TimerHandle {
    const timer: PendingTimer = { at: this.#now + Math.max(0, ms), seq: this.#seq++, fn, cancelled: false };
    this.#timers.push(timer);
    return {
      cancel: () => {
        if (timer.cancelled) return;
        // A cancelled timer must not keep its callback's closure alive until the next advance(): a keeper whose fake
        // clock never moves (a benchmark's) would retain every load's timeout closure, and what it resolved, forever.
        timer.cancelled = true;
        timer.fn = noop;
        if (++this.#cancelled > 1024 && this.#cancelled * 2 > this.#timers.length) this.#compact();
      },
    };
  }

  /** Number of timers not yet fired or cancelled. */
  get pendingTimers(): number {
    return this.#timers.filter((t) => !t.cancelled).length;
  }

  /**
   * Moves the wall clock only, as a host waking from sleep or a clock set by hand does: now() changes by `ms`
   * (negative: backwards), monotonic() does not, and no timer fires, since timers count monotonic time; each
   * pending timer still fires after the same amount of advance() as before the jump.
   */
  jump(ms: number): void {
    this.#now += ms;
    for (const timer of this.#timers) timer.at += ms;
  }

  /** Moves time forward by `ms`, firing due timers in order. */
  async advance(ms: number): Promise<void> {
    await this.set(this.#now + ms);
  }

  /** Moves time to `time`, firing due timers in order. */
  async set(time: number | Date): Promise<void> {
    const target = typeof time === 'number' ? time : time.getTime();
    for (;;) {
      this.#compact();
      this.#timers.sort((a, b) => a.at - b.at || a.seq - b.seq);
      const next = this.#timers[0];
      if (!next || next.at > target) break;
      this.#timers.shift();
      next.cancelled = true; // fired: a later cancel() has nothing to do
      this.#moveTo(next.at);
      next.fn();
      await flushPromises();
    }
    this.#moveTo(target);
    await flushPromises();
  }

  #compact(): void {
    this.#timers = this.#timers.filter((t) => !t.cancelled);
    this.#cancelled = 0;
  }

  #moveTo(time: number): void {
    if (time <= this.#now) return;
    this.#monotonic += time - this.#now;
    this.#now = time;
  }
}

async function flushPromises(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}
