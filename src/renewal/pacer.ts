/**
 * Renewals yield to traffic.
 *
 * A certificate that is still valid loses nothing when its renewal starts a
 * second later, but handshakes wait behind CPU work: on the event loop (the
 * renewal's own steps) and on the machine (its worker thread and the thread
 * pool take cores the server and its peers need). Measured on 2 cores while a
 * client kept 8 handshakes in flight: renewing back to back (24 a second)
 * took the machine from 31% to 14% idle and raised handshake p99 by 40%.
 *
 * `RenewalPacer.admit()` gates the start of a renewal. Every `checkIntervalMs`
 * the pacer looks at the last window: when the event loop was at most
 * `maxUtilization` busy and at least `minIdleCpus` of the machine's CPUs were
 * idle, up to `idleBurst` waiting renewals start; otherwise at most
 * `busyRatePerSecond` start per second, so they always progress, slowly.
 * First come, first served.
 *
 * `EventLoopTurns` spreads CPU-heavy steps of every obtain (parsing, building
 * a TLS context, signing on this thread) one per event-loop iteration, so
 * network I/O is served between them instead of queueing behind several.
 */
import { cpus } from 'node:os';
import { performance } from 'node:perf_hooks';
import type { Clock, TimerHandle } from '../clock.js';
import { ClosedError, InvalidOptionError } from '../errors.js';
import { WaitQueue } from '../limits/wait-queue.js';
import { Closable } from '../lifecycle.js';

export interface LoadReading {
  /** Event-loop utilisation (0..1) of this thread. */
  eventLoop: number;
  /** CPUs of the machine that were idle, on average (0..number of CPUs). */
  idleCpus: number;
}

/** Measures load between two moments. */
export interface LoadProbe {
  /** An opaque snapshot of cumulative counters. */
  read(): unknown;
  /** Load between an earlier snapshot and now. */
  since(snapshot: unknown): LoadReading;
}

interface SystemSnapshot {
  elu: ReturnType<typeof performance.eventLoopUtilization>;
  idleMs: number;
  totalMs: number;
}

function systemSnapshot(): SystemSnapshot {
  let idleMs = 0;
  let totalMs = 0;
  for (const cpu of cpus()) {
    const t = cpu.times;
    idleMs += t.idle;
    totalMs += t.user + t.nice + t.sys + t.idle + t.irq;
  }
  return { elu: performance.eventLoopUtilization(), idleMs, totalMs };
}

/**
 * This thread's event loop (`performance.eventLoopUtilization()`) and the machine's idle CPU time (`os.cpus()`,
 * about 50 µs a call; in a container it counts the host's CPUs).
 */
export const systemLoadProbe: LoadProbe = Object.freeze({
  read: (): unknown => systemSnapshot(),
  since(snapshot: unknown): LoadReading {
    const before = snapshot as SystemSnapshot;
    const now = systemSnapshot();
    const cpuCount = Math.max(1, cpus().length);
    const total = now.totalMs - before.totalMs;
    // Counters tick in 10 ms steps: a window without ticks says nothing about the CPUs, so it does not hold renewals back.
    const idleCpus = total > 0 ? ((now.idleMs - before.idleMs) / total) * cpuCount : cpuCount;
    return { eventLoop: performance.eventLoopUtilization(now.elu, before.elu).utilization, idleCpus };
  },
});

export interface PacerOptions {
  /** Event-loop utilisation (0..1) above which renewals are rate-limited. */
  maxUtilization: number;
  /** Idle CPUs (of the machine) below which renewals are rate-limited. */
  minIdleCpus: number;
  /** Renewals started per second while busy. */
  busyRatePerSecond: number;
  /** Window over which load is measured (at least 100 ms: CPU counters tick every 10 ms). */
  checkIntervalMs: number;
  /** Renewals started per window while not busy. */
  idleBurst: number;
  probe?: LoadProbe;
  /** Times windows and the busy rate; tests pass a FakeClock. Default: monotonic time, ref'd timers. */
  clock?: Clock;
}

/** Ref'd on purpose: a caller awaiting renew() must not see the process exit under it; close() clears it. */
const pacerClock: Clock = Object.freeze({
  now: () => performance.now(),
  setTimer(fn: () => void, ms: number): TimerHandle {
    const timer = setTimeout(fn, ms);
    return { cancel: () => clearTimeout(timer) };
  },
});

export class RenewalPacer extends Closable {
  readonly #options: Required<PacerOptions>;
  readonly #waiters = new WaitQueue('Waiting to renew was aborted');
  #measuring = false;
  #timer: TimerHandle | undefined;
  #lastAdmittedAt = Number.NEGATIVE_INFINITY;
  #admitted = 0;
  #admittedWhileBusy = 0;

  constructor(options: PacerOptions) {
    super('RenewalPacer');
    if (!(options.maxUtilization > 0 && options.maxUtilization <= 1)) throw new InvalidOptionError('renewalPacing.maxEventLoopUtilization', 'must be a number in (0, 1]');
    if (!(Number.isFinite(options.minIdleCpus) && options.minIdleCpus >= 0)) throw new InvalidOptionError('renewalPacing.minIdleCpus', 'must be a number >= 0');
    if (!(Number.isFinite(options.busyRatePerSecond) && options.busyRatePerSecond > 0)) throw new InvalidOptionError('renewalPacing.busyRenewalsPerSecond', 'must be a positive number');
    if (!(Number.isInteger(options.idleBurst) && options.idleBurst >= 1)) throw new InvalidOptionError('renewalPacing.idleBurst', 'must be an integer >= 1');
    if (!(Number.isFinite(options.checkIntervalMs) && options.checkIntervalMs > 0)) throw new InvalidOptionError('renewalPacing.checkIntervalMs', 'must be a positive number of milliseconds');
    this.#options = { probe: systemLoadProbe, clock: pacerClock, ...options };
  }

  /** Renewals admitted so far, how many of them while busy, and how many wait. */
  get stats(): { admitted: number; admittedWhileBusy: number; waiting: number } {
    return { admitted: this.#admitted, admittedWhileBusy: this.#admittedWhileBusy, waiting: this.#waiters.size };
  }

  /** Resolves when a renewal may start. Rejects when `signal` aborts or the pacer closes. */
  admit(signal?: AbortSignal): Promise<void> {
    if (this.closed) return Promise.reject(new ClosedError('RenewalPacer'));
    const admitted = this.#waiters.wait(signal);
    this.#measure();
    return admitted;
  }

  /** Rejects every waiting renewal with ClosedError and stops the timer. Idempotent. */
  protected onClose(): void {
    this.#timer?.cancel();
    this.#timer = undefined;
    this.#waiters.rejectAll(new ClosedError('RenewalPacer'));
  }

  /** Measures one window, admits the waiters at the front that the load allows, and measures again while any wait. */
  #measure(): void {
    if (this.#measuring || this.closed || this.#waiters.size === 0) return;
    this.#measuring = true;
    const { probe, checkIntervalMs, clock } = this.#options;
    const snapshot = probe.read();
    this.#timer = clock.setTimer(() => {
      this.#timer = undefined;
      this.#measuring = false;
      if (this.closed) return;
      const load = probe.since(snapshot);
      const busy = load.eventLoop > this.#options.maxUtilization || load.idleCpus < this.#options.minIdleCpus;
      const now = clock.now();
      if (!busy || now - this.#lastAdmittedAt >= 1000 / this.#options.busyRatePerSecond) {
        for (let quota = busy ? 1 : this.#options.idleBurst; quota > 0 && this.#waiters.releaseNext(); quota--) {
          this.#admitted++;
          if (busy) this.#admittedWhileBusy++;
        }
        this.#lastAdmittedAt = now;
      }
      this.#measure();
    }, checkIntervalMs);
  }
}

/** Hands out event-loop iterations one caller at a time (see the module comment). */
export class EventLoopTurns {
  readonly #waiting: (() => void)[] = [];
  #head = 0;
  #scheduled = false;
  #lane: Promise<void> = Promise.resolve();

  /** Resolves in a later event-loop iteration than any earlier caller's turn. */
  turn(): Promise<void> {
    return new Promise<void>((resolve) => {
      this.#waiting.push(resolve);
      this.#schedule();
    });
  }

  /**
   * Runs `fn` on a turn of its own, one such task at a time: for async CPU work (key generation and
   * signing hop to the thread pool and back) whose continuations would otherwise land in the same
   * iteration as other callers'.
   */
  async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const previous = this.#lane;
    let done!: () => void;
    this.#lane = new Promise<void>((resolve) => {
      done = resolve;
    });
    await previous;
    try {
      await this.turn();
      return await fn();
    } finally {
      done();
    }
  }

  #schedule(): void {
    if (this.#scheduled || this.#head === this.#waiting.length) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      const next = this.#waiting[this.#head++] as () => void;
      if (this.#head === this.#waiting.length) {
        this.#waiting.length = 0;
        this.#head = 0;
      }
      // Queued before `next` runs: an immediate queued now runs in the next iteration, after that iteration's I/O.
      this.#schedule();
      next();
    });
  }
}
