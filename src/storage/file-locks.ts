/**
 * FileStorage's locks: directories `<root>/locks/<name>.lock` managed by
 * proper-lockfile. Creating a directory is atomic, the holder refreshes its
 * mtime, and a lock not refreshed for `lockStaleMs` (holder crashed or frozen)
 * is taken over. Lock files with content were a long source of certmagic bugs
 * (caddy#4448); the lock directory holds only one empty folder per grant, the
 * grant's staging folder for fenced writes (file.ts): a takeover removes the
 * whole lock directory, and with it every write a frozen holder had staged.
 * Whatever else is found at a lock path (a file, a folder with content, a
 * symlink) is taken over the same way once its mtime is stale, with one warn
 * per takeover.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { lstat, readdir, rm, stat, unlink } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type * as ProperLockfile from 'proper-lockfile';
import { lazyModule } from '../lazy.js';
import { AbortedError, ClosedError, InvalidOptionError, LockLostError, LockTimeoutError, type StorageError } from '../errors.js';
import type { Logger } from '../logger.js';
import { DIRECTORY_MODE, LOCK_POLL_INITIAL_MS, LOCK_POLL_MAX_MS } from './file-options.js';
import { errorCode, ignoreMissing, isMissing, type FolderGuard } from './file-safety.js';
import type { LockOptions } from './types.js';
// Loaded at the first lock: serving stored certificates needs no lock, and it costs start-up time (with its exit handler).
const lockfile = lazyModule<typeof ProperLockfile>('proper-lockfile');

interface HeldLock {
  release: () => Promise<void>;
  lockDir: string;
  /** This grant's staging folder inside the lock directory (fenced writes rename out of it). */
  grantDir: string;
  /** mtime of the lock directory as we last set it. */
  mtimeMs: number;
  /** Inode and birth time of the lock directory we created: a takeover recreates it. */
  identity: string;
  /** When we last refreshed the lock (or started taking it): our lease runs from here. */
  refreshedAt: number;
  compromised: boolean;
  /** Set by abandonLock(): refreshes are silently skipped. */
  abandoned: boolean;
}

type Callback = (err: NodeJS.ErrnoException | null) => void;

export interface FileLocksContext {
  locksDir: string;
  lockStaleMs: number;
  lockRefreshMs: number;
  log: Logger;
  guard: FolderGuard;
  /** Aborted when the storage closes: waits stop, a lock taken meanwhile is given back. */
  closeSignal: AbortSignal;
  storageError: (action: string, err: unknown) => StorageError;
}

export class FileLocks {
  readonly #ctx: FileLocksContext;
  readonly #held = new Map<string, HeldLock>();
  /** Locks being taken, by lock directory, so refreshes seen during acquisition are recorded. */
  readonly #byLockDir = new Map<string, HeldLock>();
  /** Identity of each lock directory we created, kept after losing it (see rmdirSync). */
  readonly #acquiredIdentity = new Map<string, string>();
  /** Lock paths proper-lockfile has just found stale and is about to remove (a takeover). */
  readonly #staleSeen = new Set<string>();
  /** The fs proper-lockfile uses: records our own refreshes, creates lock directories 0700 with their grant folder. */
  readonly #lockFs: Record<string, unknown>;

  constructor(ctx: FileLocksContext) {
    this.#ctx = ctx;
    this.#lockFs = {
      // The grant folder is made before proper-lockfile sets the mtime it will check, so it never looks like a change.
      mkdir: (path: string, cb: Callback) =>
        fs.mkdir(path, DIRECTORY_MODE, (err) => {
          const taking = this.#byLockDir.get(path);
          if (err || taking === undefined) return cb(err);
          fs.mkdir(taking.grantDir, DIRECTORY_MODE, (grantErr) => {
            if (grantErr) fs.rmdir(path, () => cb(grantErr));
            else cb(null);
          });
        }),
      // proper-lockfile stats a busy lock to judge it stale, then removes it with rmdir: note which
      // removals are takeovers (by a lock being taken, not one held), so they can handle any leftover.
      stat: (path: string, cb: (err: NodeJS.ErrnoException | null, info?: fs.Stats) => void) =>
        fs.stat(path, (err, info) => {
          const taking = this.#byLockDir.get(path);
          if (!err && taking !== undefined && taking.identity === '' && info.mtime.getTime() < Date.now() - ctx.lockStaleMs) {
            this.#staleSeen.add(path);
          }
          cb(err, info);
        }),
      rmdir: (path: string, cb: Callback) => {
        if (this.#staleSeen.delete(path)) {
          this.#removeStaleLock(path).then(() => cb(null), (err: NodeJS.ErrnoException) => cb(err));
          return;
        }
        // Our own release: the grant folder (and any write staged in it) goes with the lock.
        fs.rm(path, { recursive: true }, cb);
      },
      // Only used by proper-lockfile's exit handler, which removes every lock
      // it still lists, including one another holder has taken over from us
      // in the meantime (not noticed yet): leave such a directory alone.
      rmdirSync: (path: string) => {
        const expected = this.#acquiredIdentity.get(path);
        if (expected !== undefined) {
          try {
            if (directoryIdentity(fs.statSync(path)) !== expected) return;
          } catch {
            return;
          }
        }
        fs.rmSync(path, { recursive: true, force: true });
      },
      realpath: fs.realpath,
      utimes: (path: string, atime: Date, mtime: Date, cb: Callback) => {
        const held = this.#byLockDir.get(path);
        if (held?.abandoned) {
          cb(null);
          return;
        }
        fs.utimes(path, atime, mtime, (err) => {
          if (!err && held) {
            held.mtimeMs = mtime.getTime();
            held.refreshedAt = Date.now();
          }
          cb(err);
        });
      },
    };
  }

  tryLock(name: string): Promise<boolean> {
    return this.#tryAcquire(name);
  }

  async lock(name: string, options: LockOptions = {}): Promise<void> {
    const { signal, timeoutMs } = options;
    if (timeoutMs !== undefined && (!Number.isFinite(timeoutMs) || timeoutMs < 0)) {
      throw new InvalidOptionError('timeoutMs', 'must be a non-negative number of milliseconds');
    }
    // Not AbortSignal.any: combined signals on a long-lived one have leaked in Node 20/22.
    const stops = signal ? [signal, this.#ctx.closeSignal] : [this.#ctx.closeSignal];
    const deadline = timeoutMs === undefined ? undefined : Date.now() + timeoutMs;
    let delay = LOCK_POLL_INITIAL_MS;
    for (;;) {
      if (stops.some((s) => s.aborted)) throw abortedWaiting(name, signal);
      if (await this.#tryAcquire(name)) return;
      const now = Date.now();
      if (deadline !== undefined && now >= deadline) throw new LockTimeoutError(name);
      // Jitter keeps several waiters from polling in lockstep.
      let wait = Math.round(delay * (0.5 + Math.random() / 2));
      if (deadline !== undefined) wait = Math.min(wait, deadline - now);
      if (!(await pollDelay(wait, stops))) throw abortedWaiting(name, signal);
      delay = Math.min(delay * 2, LOCK_POLL_MAX_MS);
    }
  }

  async unlock(name: string): Promise<void> {
    const held = this.#held.get(name);
    if (!held) return;
    this.#held.delete(name);
    this.#byLockDir.delete(held.lockDir);
    // Releasing removes the lock directory. If another holder has taken the
    // lock over (we were frozen past the stale period), that directory is
    // theirs: leave it, and proper-lockfile's refresher notices and stops.
    if (held.compromised || (await this.#ownership(held)) !== 'ours') {
      this.#ctx.log.debug({ lock: name }, 'lock was already lost; nothing to release');
      return;
    }
    try {
      await held.release();
      this.#acquiredIdentity.delete(held.lockDir);
    } catch (err) {
      // Compromised meanwhile: proper-lockfile already let it go.
      if (errorCode(err) === 'ERELEASED') return;
      throw this.#ctx.storageError(`release lock "${name}"`, err);
    }
  }

  async assertLockHeld(name: string): Promise<void> {
    const held = this.#held.get(name);
    if (!held) throw new LockLostError(name, `Lock "${name}" is not held by this storage instance`);
    if (held.compromised) throw new LockLostError(name);
    // Another process may take the lock once its mtime is stale; stop trusting
    // the lease a little before that (clock granularity, slow file systems).
    const margin = Math.min(1_000, this.#ctx.lockStaleMs / 4);
    if (Date.now() - held.refreshedAt >= this.#ctx.lockStaleMs - margin) {
      throw new LockLostError(name, `Lock "${name}" was not refreshed in time and may have been taken over`);
    }
    const ownership = await this.#ownership(held);
    if (ownership === 'missing') throw new LockLostError(name, `Lock "${name}" was removed by someone else`);
    if (ownership === 'taken') throw new LockLostError(name, `Lock "${name}" was taken over by another holder`);
  }

  /** The staging folder of the grant this instance holds for `name`; throws LockLostError when it holds none. */
  grantDir(name: string): string {
    const held = this.#held.get(name);
    if (!held || held.compromised) throw new LockLostError(name, `Lock "${name}" is not held by this storage instance`);
    return held.grantDir;
  }

  /** Test aid: stop refreshing `name` without releasing it, as a frozen or crashed holder would. */
  abandonLock(name: string): void {
    const held = this.#held.get(name);
    if (held) held.abandoned = true;
  }

  /** Releases every lock this instance holds (on close). */
  async releaseAll(): Promise<void> {
    for (const name of [...this.#held.keys()]) {
      await this.unlock(name).catch((err: unknown) => {
        this.#ctx.log.warn({ lock: name, err }, 'could not release lock while closing');
      });
    }
  }

  async #tryAcquire(name: string): Promise<boolean> {
    const file = join(this.#ctx.locksDir, name);
    const lockDir = `${file}.lock`;
    // A second lock() on a lock this instance holds must wait like everyone else
    // (locks are not re-entrant); never let it overwrite our own record. Nor one this instance is
    // taking right now: the loser's cleanup would drop the winner's record, its refreshes would then
    // look like a takeover, and unlock() would leave the lock directory behind, refreshed forever.
    if (this.#held.has(name) || this.#byLockDir.has(lockDir)) return false;
    const grantDir = join(lockDir, `grant-${randomBytes(8).toString('hex')}`);
    const held: HeldLock = { release: async () => undefined, lockDir, grantDir, mtimeMs: 0, identity: '', refreshedAt: Date.now(), compromised: false, abandoned: false };
    this.#byLockDir.set(lockDir, held);
    try {
      await this.#ctx.guard.secureFolders(this.#ctx.locksDir, true);
      held.release = await lockfile.lock(file, {
        stale: this.#ctx.lockStaleMs,
        update: this.#ctx.lockRefreshMs,
        realpath: false,
        retries: 0,
        fs: this.#lockFs,
        onCompromised: (err) => {
          held.compromised = true;
          this.#ctx.log.warn({ lock: name, reason: err.message }, 'lock compromised: another holder may have taken it over');
        },
      });
      const info = await stat(lockDir);
      held.mtimeMs = info.mtime.getTime();
      held.identity = directoryIdentity(info);
      this.#acquiredIdentity.set(lockDir, held.identity);
    } catch (err) {
      this.#byLockDir.delete(lockDir);
      this.#staleSeen.delete(lockDir);
      if (errorCode(err) === 'ELOCKED') return false;
      throw this.#ctx.storageError(`take lock "${name}"`, err);
    }
    if (this.#ctx.closeSignal.aborted) {
      // close() ran while we were taking it: give it straight back.
      this.#byLockDir.delete(lockDir);
      await held.release().catch(() => undefined);
      throw new ClosedError('FileStorage');
    }
    this.#held.set(name, held);
    return true;
  }

  /**
   * Removes a stale leftover at a lock path, whatever its shape: our own
   * directory (with its grant folder and any write a frozen holder staged),
   * but also a regular file (an older version, another tool, a crash), a
   * directory with other content, or a symlink (removed, never followed).
   * rmdir alone fails on all of those (ENOTDIR, ENOTEMPTY) and the name could
   * never be locked again. One warn per takeover: a failure here is an error
   * of this lock() call, never a loop of log lines.
   */
  async #removeStaleLock(path: string): Promise<void> {
    let info: fs.Stats;
    try {
      info = await lstat(path);
    } catch (err) {
      if (errorCode(err) === 'ENOENT') return;
      throw err;
    }
    let leftover: string;
    if (info.isDirectory()) {
      const entries = (await readdir(path)).filter((entry) => !entry.startsWith('grant-'));
      leftover = entries.length === 0 ? 'lock folder' : `folder with ${entries.length} other entries`;
      await rm(path, { recursive: true, force: true });
    } else {
      leftover = info.isFile() ? (info.size === 0 ? 'empty file' : `file of ${info.size} bytes`) : info.isSymbolicLink() ? 'symlink' : 'special file';
      await unlink(path).catch(ignoreMissing);
    }
    const lock = basename(path).replace(/\.lock$/, '');
    this.#ctx.log.warn({ lock, leftover, ageMs: Date.now() - info.mtime.getTime() }, 'taking over a stale lock');
  }

  /**
   * Whether the lock directory is still the one we hold. A takeover recreates
   * it (new inode or birth time) and sets its own mtime; a refresh of our own
   * may be landing right now, so look again before concluding.
   */
  async #ownership(held: HeldLock): Promise<'ours' | 'missing' | 'taken'> {
    for (let attempt = 0; ; attempt++) {
      let info: fs.Stats;
      try {
        info = await stat(held.lockDir);
      } catch (err) {
        if (isMissing(err)) return 'missing';
        throw this.#ctx.storageError('check a lock', err);
      }
      if (held.compromised || directoryIdentity(info) !== held.identity) return 'taken';
      if (info.mtime.getTime() === held.mtimeMs) return 'ours';
      if (attempt >= 2) return 'taken';
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

function abortedWaiting(name: string, signal: AbortSignal | undefined): Error {
  if (!signal?.aborted) return new ClosedError('FileStorage');
  return new AbortedError(`Waiting for lock "${name}" was aborted`, { cause: signal.reason });
}

/**
 * Waits `ms` (a referenced timer: a caller is awaiting the lock, so a CLI must
 * not exit meanwhile); false when aborted first.
 */
function pollDelay(ms: number, signals: AbortSignal[]): Promise<boolean> {
  return new Promise((resolve) => {
    if (signals.some((s) => s.aborted)) {
      resolve(false);
      return;
    }
    const done = (result: boolean): void => {
      clearTimeout(timer);
      for (const s of signals) s.removeEventListener('abort', onAbort);
      resolve(result);
    };
    const onAbort = (): void => done(false);
    const timer = setTimeout(() => done(true), ms);
    for (const s of signals) s.addEventListener('abort', onAbort, { once: true });
  });
}

function directoryIdentity(info: fs.Stats): string {
  return `${info.dev}:${info.ino}:${info.birthtimeMs}`;
}
