/**
 * Distributed locks built from leases on a shared server (Redis, PostgreSQL,
 * ...). A backend only supplies four atomic primitives keyed by a random
 * per-acquisition token; this class does the rest the same way for every
 * backend: waiting with polling, refreshing the lease while it is held,
 * noticing a lost lease, releasing on close.
 *
 * Why leases and not "held until released": a process that dies (SIGKILL,
 * machine lost) cannot release, so every lock must expire on its own. The
 * holder refreshes well before expiry; a holder that was paused past the TTL
 * finds out in assertLockHeld() before its final write.
 */
import { randomUUID } from 'node:crypto';
import { type TimerHandle, systemClock } from '../clock.js';
import { AbortedError, InvalidOptionError, LockLostError, LockTimeoutError } from '../errors.js';
import type { Logger } from '../logger.js';
import { validateLockName } from './keys.js';
import { Closable } from '../lifecycle.js';
import type { FencedWrite, LockLeaseChecker, LockOptions, Locker, TryLocker } from './types.js';
import { durationMs } from '../validate.js';
import { DEFAULT_LOCK_POLL_MS, DEFAULT_LOCK_TTL_MS } from '../defaults.js';
export { DEFAULT_LOCK_TTL_MS, DEFAULT_LOCK_POLL_MS };

/** Atomic operations on one named lease; each must be a single round trip or transaction. */
export interface LeaseBackend {
  /**
   * Takes the lease when nobody holds it or the holder's lease expired: false when it is held, else the
   * grant's fencing token (a number greater than every earlier grant's of this lock), or true for a
   * backend without fencing tokens.
   */
  acquire(name: string, token: string, ttlMs: number): Promise<boolean | number>;
  /** Extends the lease only when `token` still holds it; false when it was lost. */
  refresh(name: string, token: string, ttlMs: number): Promise<boolean>;
  /** Deletes the lease only when `token` holds it. */
  release(name: string, token: string): Promise<void>;
  /** True when `token` holds an unexpired lease. */
  isHeld(name: string, token: string): Promise<boolean>;
  /**
   * Applies every write atomically only while `token` holds an unexpired lease granted with fencing
   * token `fence`; false (nothing written) otherwise. Keys are validated and values sealed by the caller.
   */
  writeFenced?(name: string, token: string, fence: number, writes: readonly FencedWrite[]): Promise<boolean>;
}


export interface LeaseLockOptions {
  /** A lease not refreshed for this long expires and may be taken over (default 10 s). */
  lockTtlMs?: number | undefined;
  /** How often a held lease is refreshed (default a third of lockTtlMs). */
  lockRefreshMs?: number | undefined;
  /** How often a waiter retries a taken lock (default 500 ms, capped at lockTtlMs; jittered). */
  lockPollMs?: number | undefined;
}

export interface ResolvedLeaseLockOptions {
  readonly lockTtlMs: number;
  readonly lockRefreshMs: number;
  readonly lockPollMs: number;
}

/** Validates lease timings; the error names the offending option. */
export function resolveLeaseLockOptions(options: LeaseLockOptions): ResolvedLeaseLockOptions {
  const lockTtlMs = positiveMs(options.lockTtlMs, DEFAULT_LOCK_TTL_MS, 'lockTtlMs');
  const lockRefreshMs = positiveMs(options.lockRefreshMs, lockTtlMs / 3, 'lockRefreshMs');
  if (lockRefreshMs >= lockTtlMs) {
    throw new InvalidOptionError('lockRefreshMs', 'must be smaller than lockTtlMs, or the lease expires between refreshes');
  }
  const lockPollMs = positiveMs(options.lockPollMs, Math.min(DEFAULT_LOCK_POLL_MS, lockTtlMs), 'lockPollMs');
  return Object.freeze({ lockTtlMs, lockRefreshMs, lockPollMs });
}

function positiveMs(value: unknown, fallback: number, option: string): number {
  return durationMs(value, option) ?? fallback;
}

interface HeldLease {
  readonly token: string;
  /** The grant's fencing token (0 when the backend has none). */
  readonly fence: number;
  timer: TimerHandle | undefined;
  /** Set when a refresh found the lease gone. */
  lost: boolean;
}

export class LeaseLocks extends Closable implements Locker, TryLocker, LockLeaseChecker {
  readonly #backend: LeaseBackend;
  readonly #options: ResolvedLeaseLockOptions;
  readonly #what: string;
  readonly #log: Logger | undefined;
  readonly #held = new Map<string, HeldLease>();
  /** Cancels the waits in progress, on close(). */
  readonly #waits = new Set<(error: Error) => void>();

  /** `what` names the storage in errors (e.g. "RedisStorage"). */
  constructor(backend: LeaseBackend, options: ResolvedLeaseLockOptions, what: string, logger?: Logger) {
    super(what);
    this.#backend = backend;
    this.#options = options;
    this.#what = what;
    this.#log = logger;
  }

  async tryLock(name: string): Promise<boolean> {
    this.assertOpen();
    const n = validateLockName(name);
    return this.#attempt(n);
  }

  async lock(name: string, options: LockOptions = {}): Promise<void> {
    this.assertOpen();
    const n = validateLockName(name);
    const { signal, timeoutMs } = options;
    const aborted = (): AbortedError => new AbortedError(`Waiting for lock "${n}" was aborted`, { cause: signal?.reason });
    if (signal?.aborted) throw aborted();
    const deadline = timeoutMs === undefined ? undefined : systemClock.now() + timeoutMs;
    for (;;) {
      if (await this.#attempt(n)) return;
      // close() may have run during the attempt, before this wait could be registered for cancelling.
      if (this.closed) throw new AbortedError(`${this.#what} was closed while waiting for lock "${n}"`);
      if (deadline !== undefined && systemClock.now() >= deadline) throw new LockTimeoutError(n);
      // Jitter spreads out waiters so they do not all retry at once when the lock frees up.
      let delay = this.#options.lockPollMs * (0.8 + Math.random() * 0.4);
      if (deadline !== undefined) delay = Math.min(delay, Math.max(0, deadline - systemClock.now()));
      await this.#wait(delay, signal, aborted);
    }
  }

  async unlock(name: string): Promise<void> {
    const n = validateLockName(name);
    const lease = this.#held.get(n);
    if (!lease) return;
    this.#forget(n, lease);
    await this.#backend.release(n, lease.token);
  }

  async assertLockHeld(name: string): Promise<void> {
    const n = validateLockName(name);
    const lease = this.#held.get(n);
    if (!lease || lease.lost || !(await this.#backend.isHeld(n, lease.token))) {
      throw new LockLostError(n);
    }
  }

  /**
   * Test aid: acts as if this holder crashed while holding `name`: refreshing
   * stops and the lock is not released, so another holder takes it over once
   * its lease expires.
   */
  abandon(name: string): void {
    const lease = this.#held.get(validateLockName(name));
    lease?.timer?.cancel();
    if (lease) lease.timer = undefined;
  }

  /**
   * Applies `writes` through the backend's fenced write, under the lease and fencing token this
   * instance was granted for `name`; LockLostError when it no longer holds them (nothing written).
   */
  async writeFenced(name: string, writes: readonly FencedWrite[]): Promise<void> {
    this.assertOpen();
    const n = validateLockName(name);
    const lease = this.#held.get(n);
    const backend = this.#backend;
    if (backend.writeFenced === undefined) throw new InvalidOptionError('backend', `${this.#what} has no fenced writes`);
    if (!lease || lease.lost) throw new LockLostError(n);
    if (!(await this.track(backend.writeFenced(n, lease.token, lease.fence, writes)))) {
      throw new LockLostError(n, `Lock "${n}" was taken over by another holder before this write; nothing was overwritten`);
    }
  }

  /** Stops refreshing, cancels waits and releases every held lock (close(): idempotent, waits for fenced writes in flight). */
  protected async onClose(): Promise<void> {
    for (const cancel of [...this.#waits]) cancel(new AbortedError(`${this.#what} was closed while waiting for a lock`));
    const releases = [...this.#held].map(async ([name, lease]) => {
      this.#forget(name, lease);
      try {
        await this.#backend.release(name, lease.token);
      } catch (error) {
        // The lease expires on its own; closing must still finish.
        this.#log?.warn({ lock: name, err: error }, 'could not release lock on close; it will expire');
      }
    });
    await Promise.all(releases);
  }

  async #attempt(name: string): Promise<boolean> {
    const token = randomUUID();
    const granted = await this.#backend.acquire(name, token, this.#options.lockTtlMs);
    if (granted === false) return false;
    if (this.closed) {
      // close() ran while the acquire was in flight: give the lock straight back.
      await this.#backend.release(name, token);
      this.assertOpen();
    }
    const lease: HeldLease = { token, fence: typeof granted === 'number' ? granted : 0, timer: undefined, lost: false };
    this.#held.set(name, lease);
    this.#scheduleRefresh(name, lease);
    return true;
  }

  #scheduleRefresh(name: string, lease: HeldLease): void {
    lease.timer = systemClock.setTimer(() => {
      void this.#refresh(name, lease);
    }, this.#options.lockRefreshMs);
  }

  async #refresh(name: string, lease: HeldLease): Promise<void> {
    try {
      if (await this.#backend.refresh(name, lease.token, this.#options.lockTtlMs)) {
        if (this.#held.get(name) === lease && lease.timer !== undefined) this.#scheduleRefresh(name, lease);
        return;
      }
      if (this.#held.get(name) !== lease) return;
      lease.lost = true;
      lease.timer = undefined;
      this.#log?.warn({ lock: name }, 'lock lease lost: it expired before it could be refreshed');
    } catch (error) {
      // A transient error: the lease may still be valid; try again next period (assertLockHeld asks the server).
      this.#log?.warn({ lock: name, err: error }, 'could not refresh lock lease; retrying');
      if (this.#held.get(name) === lease && lease.timer !== undefined) this.#scheduleRefresh(name, lease);
    }
  }

  #forget(name: string, lease: HeldLease): void {
    lease.timer?.cancel();
    lease.timer = undefined;
    if (this.#held.get(name) === lease) this.#held.delete(name);
  }

  #wait(ms: number, signal: AbortSignal | undefined, aborted: () => Error): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (signal?.aborted) {
        reject(aborted());
        return;
      }
      const finish = (error?: Error): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.#waits.delete(finish);
        if (error) reject(error);
        else resolve();
      };
      const onAbort = (): void => finish(aborted());
      // Not unref'd, unlike the refresh timer: a caller awaiting lock() must not see the process exit under it.
      const timer = setTimeout(() => finish(), ms);
      this.#waits.add(finish);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }
}
