/**
 * In-process storage for tests and single-process use. Instances sharing one
 * MemoryBackend behave like two processes sharing a database: same keys, and
 * locks that exclude each other. Locks are handed to waiters in FIFO order.
 * With `lockTtlMs`, a lock whose holder stops refreshing it (see abandonLock)
 * expires and can be taken over, which is how stale-lock handling is tested.
 */
import { type Clock, type TimerHandle, systemClock } from '../clock.js';
import { AbortedError, InvalidOptionError, LockLostError, LockTimeoutError, StorageNotFoundError } from '../errors.js';
import { Closable } from '../lifecycle.js';
import { sealWrites } from './encryption.js';
import { joinKey, validateKey, validateLockName, validatePrefix } from './keys.js';
import { MemoryBackend, type Waiter } from './memory-backend.js';
import type { FencedWrite, FencedWriter, FolderLister, KeyInfo, LockLeaseChecker, LockOptions, Storage, TryLocker } from './types.js';
import { durationMs } from '../validate.js';
export { MemoryBackend };

export interface MemoryStorageOptions {
  /** Share keys and locks with other instances built on the same backend (default: a new, private backend). */
  backend?: MemoryBackend | undefined;
  /**
   * A held lock expires this many milliseconds after its holder last refreshed
   * it; holders refresh at a third of it. Default: locks never expire.
   */
  lockTtlMs?: number | undefined;
  clock?: Clock | undefined;
}

/**
 * systemClock's timers never keep the process alive, which is right for
 * background refreshes but wrong for a wait someone awaits: a CLI waiting for
 * a lock would simply exit.
 */
const REFERENCED_SYSTEM_CLOCK: Clock = Object.freeze({
  now: () => Date.now(),
  setTimer(fn: () => void, ms: number): TimerHandle {
    const timer = setTimeout(fn, Math.max(0, ms));
    return { cancel: () => clearTimeout(timer) };
  },
});

export class MemoryStorage extends Closable implements Storage, TryLocker, LockLeaseChecker, FencedWriter, FolderLister {
  readonly #backend: MemoryBackend;
  readonly #ttlMs: number | undefined;
  readonly #clock: Clock;
  /** Timers of a lock wait: kept referenced, since someone is awaiting the result. */
  readonly #waitClock: Clock;
  /** Locks this instance holds, with their refresh timers. */
  readonly #held = new Map<string, TimerHandle | undefined>();
  /** The fencing token of each lock this instance holds. */
  readonly #tokens = new Map<string, number>();
  /** Cancels pending lock waits on close(). */
  readonly #pendingWaits = new Set<(error: Error) => void>();

  constructor(options: MemoryStorageOptions = {}) {
    super('MemoryStorage');
    const { backend, lockTtlMs, clock } = options;
    if (backend !== undefined && !(backend instanceof MemoryBackend)) {
      throw new InvalidOptionError('backend', 'must be a MemoryBackend');
    }
    durationMs(lockTtlMs, 'lockTtlMs');
    this.#backend = backend ?? new MemoryBackend();
    this.#ttlMs = lockTtlMs;
    this.#clock = clock ?? systemClock;
    this.#waitClock = clock ?? REFERENCED_SYSTEM_CLOCK;
  }

  async store(key: string, value: Uint8Array): Promise<void> {
    this.assertOpen();
    this.#backend.put(validateKey(key), value, this.#clock.now());
  }

  /** All writes in one synchronous step, only while this instance holds `lock` under the token it was granted. */
  async writeFenced(lock: string, writes: readonly FencedWrite[]): Promise<void> {
    this.assertOpen();
    const n = validateLockName(lock);
    const checked = sealWrites(writes, undefined);
    const token = this.#tokens.get(n);
    if (token === undefined || !this.#backend.writeFenced(n, this, token, checked, this.#clock.now())) throw new LockLostError(n);
  }

  async load(key: string): Promise<Buffer> {
    this.assertOpen();
    const k = validateKey(key);
    const entry = this.#backend.entries.get(k);
    if (!entry) throw new StorageNotFoundError(k);
    return Buffer.from(entry.value);
  }

  async delete(key: string): Promise<void> {
    this.assertOpen();
    this.#backend.remove(validateKey(key));
  }

  async exists(key: string): Promise<boolean> {
    this.assertOpen();
    const k = validateKey(key);
    if (this.#backend.entries.has(k)) return true;
    const below = `${k}/`;
    for (const existing of this.#backend.entries.keys()) if (existing.startsWith(below)) return true;
    return false;
  }

  async list(prefix: string, recursive: boolean): Promise<string[]> {
    this.assertOpen();
    const p = validatePrefix(prefix);
    const below = p === '' ? '' : `${p}/`;
    const found = new Set<string>();
    for (const existing of this.#backend.entries.keys()) {
      if (!existing.startsWith(below)) continue;
      const parts = existing.slice(below.length).split('/');
      if (recursive) {
        let path = p;
        for (const part of parts) {
          path = joinKey(path, part);
          found.add(path);
        }
      } else {
        found.add(joinKey(p, parts[0] ?? ''));
      }
    }
    if (found.size === 0) throw new StorageNotFoundError(p);
    return [...found].sort();
  }

  async listFolders(prefix: string): Promise<string[]> {
    this.assertOpen();
    const p = validatePrefix(prefix);
    const below = p === '' ? '' : `${p}/`;
    const found = new Set<string>();
    for (const existing of this.#backend.entries.keys()) {
      if (!existing.startsWith(below)) continue;
      const slash = existing.indexOf('/', below.length);
      if (slash !== -1) found.add(existing.slice(below.length, slash));
    }
    return [...found].sort();
  }

  async stat(key: string): Promise<KeyInfo> {
    this.assertOpen();
    const k = validateKey(key);
    const entry = this.#backend.entries.get(k);
    if (entry) return { key: k, modified: new Date(entry.modified), size: entry.value.length, isTerminal: true };
    const below = `${k}/`;
    let latest: number | undefined;
    for (const [existing, e] of this.#backend.entries) {
      if (existing.startsWith(below)) latest = Math.max(latest ?? 0, e.modified.getTime());
    }
    if (latest === undefined) throw new StorageNotFoundError(k);
    return { key: k, modified: new Date(latest), size: 0, isTerminal: false };
  }

  async tryLock(name: string): Promise<boolean> {
    this.assertOpen();
    const n = validateLockName(name);
    const token = this.#backend.tryAcquire(n, this, this.#clock.now(), this.#ttlMs);
    if (token === undefined) return false;
    this.#onAcquired(n, token);
    return true;
  }

  async lock(name: string, options: LockOptions = {}): Promise<void> {
    this.assertOpen();
    const n = validateLockName(name);
    const { signal, timeoutMs } = options;
    if (signal?.aborted) throw new AbortedError(`Waiting for lock "${n}" was aborted`, { cause: signal.reason });
    const token = this.#backend.tryAcquire(n, this, this.#clock.now(), this.#ttlMs);
    if (token !== undefined) {
      this.#onAcquired(n, token);
      return;
    }
    await new Promise<void>((resolve, reject) => {
      let timeout: TimerHandle | undefined;
      let expiryCheck: TimerHandle | undefined;
      const finish = (error?: Error): void => {
        timeout?.cancel();
        expiryCheck?.cancel();
        signal?.removeEventListener('abort', onAbort);
        this.#pendingWaits.delete(cancel);
        if (error) {
          this.#backend.dequeue(n, waiter);
          reject(error);
        } else {
          resolve();
        }
      };
      const waiter: Waiter = {
        holder: this,
        grant: () => {
          this.#onAcquired(n, this.#backend.assign(n, this, this.#clock.now(), this.#ttlMs));
          finish();
        },
      };
      const cancel = (error: Error): void => finish(error);
      const onAbort = (): void => finish(new AbortedError(`Waiting for lock "${n}" was aborted`, { cause: signal?.reason }));
      // The holder may die without releasing: look again when its lease runs out.
      const scheduleExpiryCheck = (): void => {
        const expiresAt = this.#backend.expiresAt(n);
        if (expiresAt === undefined) return;
        expiryCheck = this.#waitClock.setTimer(() => {
          this.#backend.expireIfDue(n, this.#clock.now());
          if (this.#pendingWaits.has(cancel)) scheduleExpiryCheck();
        }, Math.max(1, expiresAt - this.#clock.now()));
      };
      this.#pendingWaits.add(cancel);
      signal?.addEventListener('abort', onAbort, { once: true });
      if (timeoutMs !== undefined) {
        timeout = this.#waitClock.setTimer(() => finish(new LockTimeoutError(n)), timeoutMs);
      }
      this.#backend.enqueue(n, waiter);
      scheduleExpiryCheck();
    });
  }

  async unlock(name: string): Promise<void> {
    const n = validateLockName(name);
    if (!this.#held.has(n)) return;
    this.#held.get(n)?.cancel();
    this.#held.delete(n);
    this.#tokens.delete(n);
    this.#backend.release(n, this, this.#clock.now());
  }

  async assertLockHeld(name: string): Promise<void> {
    const n = validateLockName(name);
    if (!this.#held.has(n) || !this.#backend.isHeldBy(n, this, this.#clock.now())) {
      throw new LockLostError(n);
    }
  }

  /**
   * Test aid: behaves as if this holder crashed while holding `name`. It stops
   * refreshing the lock without releasing it, so with `lockTtlMs` another
   * instance takes it over once it expires.
   */
  abandonLock(name: string): void {
    const n = validateLockName(name);
    if (!this.#held.has(n)) return;
    this.#held.get(n)?.cancel();
    this.#held.set(n, undefined);
  }

  /** Cancels lock waits and releases every lock this instance holds. */
  protected onClose(): void {
    for (const cancel of [...this.#pendingWaits]) cancel(new AbortedError('MemoryStorage was closed while waiting for a lock'));
    for (const name of [...this.#held.keys()]) {
      this.#held.get(name)?.cancel();
      this.#held.delete(name);
      this.#tokens.delete(name);
      this.#backend.release(name, this, this.#clock.now());
    }
  }

  #onAcquired(name: string, token: number): void {
    this.#tokens.set(name, token);
    const ttlMs = this.#ttlMs;
    if (ttlMs === undefined) {
      this.#held.set(name, undefined);
      return;
    }
    const refresh = (): TimerHandle =>
      this.#clock.setTimer(() => {
        if (this.#held.get(name) !== handle) return;
        if (this.#backend.refresh(name, this, this.#clock.now(), ttlMs)) {
          handle = refresh();
          this.#held.set(name, handle);
        }
      }, ttlMs / 3);
    let handle = refresh();
    this.#held.set(name, handle);
  }
}
