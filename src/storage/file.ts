/**
 * Storage on the local file system, shareable by several processes (and
 * machines on a POSIX shared file system) through one root directory.
 *
 * Writes are atomic and durable (temp file in the same directory, fsync,
 * rename, fsync of the directory), so a crash or a full disk never leaves a
 * truncated file behind (caddy#6481, caddy#4897). Files are 0600 and
 * directories 0700 whatever the umask, because they hold private keys.
 *
 * Locks are directories `<root>/locks/<name>.lock` managed by proper-lockfile:
 * creating a directory is atomic, the holder refreshes its mtime, and a lock
 * not refreshed for `lockStaleMs` (holder crashed or frozen) is taken over.
 * Lock files with content were a long source of certmagic bugs (caddy#4448);
 * a directory has no content to get wrong. Whatever else is found at a lock
 * path (a file, a folder with content, a symlink) is taken over the same way
 * once its mtime is stale, with one warn per takeover.
 */
import { setMaxListeners } from 'node:events';
import * as fs from 'node:fs';
import { chmod, lstat, mkdir, open, readdir, rename, rm, rmdir as rmdirPromise, stat, unlink } from 'node:fs/promises';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';
import { homedir } from 'node:os';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import type * as ProperLockfile from 'proper-lockfile';
import { lazyModule } from '../lazy.js';
import {
  AbortedError,
  CertKeeperError,
  ClosedError,
  InvalidOptionError,
  InvalidStorageKeyError,
  LockLostError,
  LockTimeoutError,
  StorageError,
  StorageInsecureError,
  StorageNotFoundError,
} from '../errors.js';
import { type Logger, createDefaultLogger, validateLogger } from '../logger.js';
import { createKeyEncryptor, type KeyEncryptor } from './encryption.js';
import { joinKey, keyComponents, validateKey, validateLockName, validatePrefix } from './keys.js';
import type { KeyInfo, LockLeaseChecker, LockOptions, Storage, TryLocker } from './types.js';
import { DEFAULT_LOCK_STALE_MS } from '../defaults.js';
// Loaded at the first lock: serving stored certificates needs no lock, and it costs start-up time (with its exit handler).
const lockfile = lazyModule<typeof ProperLockfile>('proper-lockfile');
export { DEFAULT_LOCK_STALE_MS };

// fs/promises.readFile reads in several chunks and is about 2.5x slower for small files (100,000 sidecars at start-up).
const readFile = promisify(fs.readFile);
const openFd = promisify(fs.open);
const fstatFd = promisify(fs.fstat);
const closeFd = promisify(fs.close);
/** Opening the final component never follows a symlink (0 where the platform has no such flag). */
const O_NOFOLLOW = fs.constants.O_NOFOLLOW ?? 0;

/** proper-lockfile refuses to treat locks younger than 2 s as stale. */
export const MIN_LOCK_STALE_MS = 2_000;
/** proper-lockfile refreshes at most once a second. */
export const MIN_LOCK_REFRESH_MS = 1_000;
/** Waiting for a busy lock polls with exponential backoff, starting here... */
export const LOCK_POLL_INITIAL_MS = 25;
/** ...and never sleeping longer than this between attempts. */
export const LOCK_POLL_MAX_MS = 1_000;
export const FILE_MODE = 0o600;
export const DIRECTORY_MODE = 0o700;
/** The directory, under the root, holding lock directories. */
export const LOCKS_FOLDER = 'locks';

export interface FileStorageOptions {
  /** Root directory. Default: `$XDG_DATA_HOME/certkeeper`, else `~/.local/share/certkeeper`. */
  root?: string | undefined;
  /** A lock not refreshed for this long is considered abandoned and taken over (default 10 000 ms, minimum 2 000). */
  lockStaleMs?: number | undefined;
  /** How often a held lock is refreshed (default: half of lockStaleMs; between 1 000 ms and lockStaleMs / 2). */
  lockRefreshMs?: number | undefined;
  logger?: Logger | undefined;
  /**
   * Encrypt private keys at rest (`*.key` and `*.pending` values) with AES-256-GCM:
   * 32 bytes, or base64 of them (`openssl rand -base64 32`). Never logged; not kept in `options`.
   */
  encryptionKey?: Uint8Array | string | undefined;
}

export interface ResolvedFileStorageOptions {
  readonly root: string;
  readonly lockStaleMs: number;
  readonly lockRefreshMs: number;
  readonly logger: Logger;
}

/** Temp files are named `.tmp-<16 hex>`: short (long key components stay under NAME_MAX) and skipped by list(). */
const TEMP_NAME = /^\.tmp-[0-9a-f]{16}$/;
/**
 * A temp file older than this was left by a writer that died between write and rename (it holds a
 * private key, maybe): removed by the sweep each instance runs once. A live write takes milliseconds.
 */
export const STALE_TEMP_FILE_MS = 60_000;
/**
 * Fault-test hook, only under the test runner (CERTKEEPER_TEST=1): a store() whose key contains this
 * string stops between writing its temp file and renaming it, says so on stdout, and waits to be killed.
 */
const FAULT_BEFORE_RENAME = process.env.CERTKEEPER_TEST === '1' ? process.env.CERTKEEPER_FAULT_BEFORE_RENAME : undefined;

export function defaultFileStorageRoot(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env.XDG_DATA_HOME;
  // The XDG spec says relative values are invalid and must be ignored.
  if (xdg && isAbsolute(xdg)) return join(xdg, 'certkeeper');
  return join(homedir(), '.local', 'share', 'certkeeper');
}

export function resolveFileStorageOptions(options: FileStorageOptions = {}): ResolvedFileStorageOptions {
  if (typeof options !== 'object' || options === null) throw new InvalidOptionError('options', 'must be an object');
  const { root, lockStaleMs, lockRefreshMs, logger } = options;
  if (root !== undefined && (typeof root !== 'string' || root.length === 0 || root.includes('\0'))) {
    throw new InvalidOptionError('root', 'must be a non-empty path');
  }
  const stale = lockStaleMs ?? DEFAULT_LOCK_STALE_MS;
  if (!Number.isInteger(stale) || stale < MIN_LOCK_STALE_MS) {
    throw new InvalidOptionError('lockStaleMs', `must be an integer of at least ${MIN_LOCK_STALE_MS} ms`);
  }
  const refresh = lockRefreshMs ?? Math.floor(stale / 2);
  if (!Number.isInteger(refresh) || refresh < MIN_LOCK_REFRESH_MS || refresh > stale / 2) {
    throw new InvalidOptionError('lockRefreshMs', `must be an integer between ${MIN_LOCK_REFRESH_MS} ms and half of lockStaleMs`);
  }
  return Object.freeze({
    root: resolve(root ?? defaultFileStorageRoot()),
    lockStaleMs: stale,
    lockRefreshMs: refresh,
    logger: logger === undefined ? createDefaultLogger('silent') : validateLogger(logger),
  });
}

interface HeldLock {
  release: () => Promise<void>;
  lockDir: string;
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

export class FileStorage implements Storage, TryLocker, LockLeaseChecker {
  readonly options: ResolvedFileStorageOptions;
  readonly #root: string;
  readonly #locksDir: string;
  readonly #log: Logger;
  readonly #encryptor: KeyEncryptor | undefined;
  readonly #held = new Map<string, HeldLock>();
  /** Locks being taken, by lock directory, so refreshes seen during acquisition are recorded. */
  readonly #byLockDir = new Map<string, HeldLock>();
  /** Identity of each lock directory we created, kept after losing it (see rmdirSync). */
  readonly #acquiredIdentity = new Map<string, string>();
  /** This process's uid; undefined where there is none (Windows): ownership and mode checks are POSIX only. */
  readonly #uid: number | undefined = typeof process.getuid === 'function' ? process.getuid() : undefined;
  /**
   * Folders (the root and below) already checked: real folders, not symlinks, owned by us or root, not
   * writable by group or others. Nobody else can change a checked folder's entries, so one check per
   * folder per instance is enough.
   */
  readonly #secureDirs = new Set<string>();
  /** The one sweep of stale temp files, started with the first operation. */
  #sweep: Promise<number> | undefined;
  /** Lock paths proper-lockfile has just found stale and is about to remove (a takeover). */
  readonly #staleSeen = new Set<string>();
  readonly #closing = new AbortController();
  #closed: Promise<void> | undefined;
  /** The fs proper-lockfile uses: records our own refreshes, creates lock directories 0700. */
  readonly #lockFs: Record<string, unknown>;

  constructor(options: FileStorageOptions = {}) {
    // Every operation in flight listens on this long-lived signal; more than 10 at once is normal, not a leak.
    setMaxListeners(0, this.#closing.signal);
    this.options = resolveFileStorageOptions(options);
    this.#encryptor = options.encryptionKey === undefined ? undefined : createKeyEncryptor(options.encryptionKey);
    this.#root = this.options.root;
    this.#locksDir = join(this.#root, LOCKS_FOLDER);
    this.#log = this.options.logger.child({ component: 'file-storage' });
    this.#lockFs = {
      mkdir: (path: string, cb: Callback) => fs.mkdir(path, DIRECTORY_MODE, cb),
      // proper-lockfile stats a busy lock to judge it stale, then removes it with rmdir: note which
      // removals are takeovers (by a lock being taken, not one held), so they can handle any leftover.
      stat: (path: string, cb: (err: NodeJS.ErrnoException | null, info?: fs.Stats) => void) =>
        fs.stat(path, (err, info) => {
          const taking = this.#byLockDir.get(path);
          if (!err && taking !== undefined && taking.identity === '' && info.mtime.getTime() < Date.now() - this.options.lockStaleMs) {
            this.#staleSeen.add(path);
          }
          cb(err, info);
        }),
      rmdir: (path: string, cb: Callback) => {
        if (!this.#staleSeen.delete(path)) {
          fs.rmdir(path, cb);
          return;
        }
        this.#removeStaleLock(path).then(() => cb(null), (err: NodeJS.ErrnoException) => cb(err));
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
        fs.rmdirSync(path);
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

  get root(): string {
    return this.#root;
  }

  async store(key: string, plain: Uint8Array): Promise<void> {
    this.#assertOpen();
    const k = validateKey(key);
    const value = this.#encryptor ? this.#encryptor.seal(k, plain) : plain;
    const path = this.#pathFor(k);
    const dir = dirname(path);
    const temp = join(dir, `.tmp-${randomBytes(8).toString('hex')}`);
    try {
      await this.#secureFolders(dir, true);
      let handle: fs.promises.FileHandle;
      try {
        handle = await open(temp, 'wx', FILE_MODE);
      } catch (err) {
        // Deleted since it was checked (delete() of a prefix): created again by us, 0700.
        if (errorCode(err) !== 'ENOENT') throw err;
        await this.#ensureDirectory(dir);
        handle = await open(temp, 'wx', FILE_MODE);
      }
      try {
        // The umask may have narrowed the mode given to open; set it exactly.
        await handle.chmod(FILE_MODE);
        await handle.writeFile(value);
        await handle.sync();
      } finally {
        await handle.close();
      }
      if (FAULT_BEFORE_RENAME && k.includes(FAULT_BEFORE_RENAME)) await pauseForKill(temp);
      await rename(temp, path);
      await syncDirectory(dir);
    } catch (err) {
      await unlink(temp).catch(() => undefined);
      throw this.#storageError(`write "${k}"`, err);
    }
  }

  async load(key: string): Promise<Buffer> {
    this.#assertOpen();
    const k = validateKey(key);
    try {
      const path = this.#pathFor(k);
      if (!(await this.#secureFolders(dirname(path), false))) throw new StorageNotFoundError(k);
      const stored = await this.#readNoFollow(path);
      return this.#encryptor ? this.#encryptor.open(k, stored) : stored;
    } catch (err) {
      if (err instanceof StorageNotFoundError) throw err;
      if (isMissing(err) || errorCode(err) === 'EISDIR') throw new StorageNotFoundError(k, { cause: err });
      throw this.#storageError(`read "${k}"`, err);
    }
  }

  async delete(key: string): Promise<void> {
    this.#assertOpen();
    const k = validateKey(key);
    try {
      const path = this.#pathFor(k);
      if (!(await this.#secureFolders(dirname(path), false))) return;
      // rm never follows a symlink, at the top or inside.
      await rm(path, { recursive: true, force: true });
      if (this.#secureDirs.has(path)) this.#forgetFolders(path);
    } catch (err) {
      if (isMissing(err)) return;
      throw this.#storageError(`delete "${k}"`, err);
    }
  }

  async exists(key: string): Promise<boolean> {
    this.#assertOpen();
    const k = validateKey(key);
    try {
      const path = this.#pathFor(k);
      if (!(await this.#secureFolders(dirname(path), false))) return false;
      if ((await lstat(path)).isSymbolicLink()) throw new StorageInsecureError(path, 'is a symbolic link below the storage root');
      return true;
    } catch (err) {
      if (isMissing(err)) return false;
      throw this.#storageError(`check "${k}"`, err);
    }
  }

  async list(prefix: string, recursive: boolean): Promise<string[]> {
    this.#assertOpen();
    const p = validatePrefix(prefix);
    const found: string[] = [];
    const walk = async (keyPrefix: string, dir: string): Promise<void> => {
      if (!(await this.#secureFolders(dir, false))) throw new StorageNotFoundError(keyPrefix);
      const entries = await readdir(dir, { withFileTypes: true });
      for (const entry of entries) {
        if (TEMP_NAME.test(entry.name)) continue;
        if (entry.isSymbolicLink()) {
          // Never listed, so never loaded: one planted link must not stop the other names from starting.
          this.#log.warn({ path: join(dir, entry.name) }, 'ignoring a symbolic link below the storage root');
          continue;
        }
        const key = joinKey(keyPrefix, entry.name);
        found.push(key);
        if (recursive && entry.isDirectory()) await walk(key, join(dir, entry.name));
      }
    };
    try {
      await walk(p, p === '' ? this.#root : this.#pathFor(p));
    } catch (err) {
      if (err instanceof StorageNotFoundError) throw new StorageNotFoundError(p, { cause: err });
      if (isMissing(err)) throw new StorageNotFoundError(p, { cause: err });
      throw this.#storageError(`list "${p}"`, err);
    }
    if (found.length === 0) throw new StorageNotFoundError(p);
    return found.sort();
  }

  async stat(key: string): Promise<KeyInfo> {
    this.#assertOpen();
    const k = validateKey(key);
    try {
      const path = this.#pathFor(k);
      if (!(await this.#secureFolders(dirname(path), false))) throw new StorageNotFoundError(k);
      const info = await lstat(path);
      if (info.isSymbolicLink()) throw new StorageInsecureError(path, 'is a symbolic link below the storage root');
      return { key: k, modified: info.mtime, size: info.isFile() ? info.size : 0, isTerminal: info.isFile() };
    } catch (err) {
      if (err instanceof StorageNotFoundError) throw err;
      if (isMissing(err)) throw new StorageNotFoundError(k, { cause: err });
      throw this.#storageError(`stat "${k}"`, err);
    }
  }

  async tryLock(name: string): Promise<boolean> {
    this.#assertOpen();
    return this.#tryAcquire(validateLockName(name));
  }

  async lock(name: string, options: LockOptions = {}): Promise<void> {
    this.#assertOpen();
    const n = validateLockName(name);
    const { signal, timeoutMs } = options;
    if (timeoutMs !== undefined && (!Number.isFinite(timeoutMs) || timeoutMs < 0)) {
      throw new InvalidOptionError('timeoutMs', 'must be a non-negative number of milliseconds');
    }
    // Not AbortSignal.any: combined signals on a long-lived one have leaked in Node 20/22.
    const stops = signal ? [signal, this.#closing.signal] : [this.#closing.signal];
    const deadline = timeoutMs === undefined ? undefined : Date.now() + timeoutMs;
    let delay = LOCK_POLL_INITIAL_MS;
    for (;;) {
      if (stops.some((s) => s.aborted)) throw this.#abortedWaiting(n, signal);
      if (await this.#tryAcquire(n)) return;
      const now = Date.now();
      if (deadline !== undefined && now >= deadline) throw new LockTimeoutError(n);
      // Jitter keeps several waiters from polling in lockstep.
      let wait = Math.round(delay * (0.5 + Math.random() / 2));
      if (deadline !== undefined) wait = Math.min(wait, deadline - now);
      if (!(await pollDelay(wait, stops))) throw this.#abortedWaiting(n, signal);
      delay = Math.min(delay * 2, LOCK_POLL_MAX_MS);
    }
  }

  async unlock(name: string): Promise<void> {
    const n = validateLockName(name);
    const held = this.#held.get(n);
    if (!held) return;
    this.#held.delete(n);
    this.#byLockDir.delete(held.lockDir);
    // Releasing removes the lock directory. If another holder has taken the
    // lock over (we were frozen past the stale period), that directory is
    // theirs: leave it, and proper-lockfile's refresher notices and stops.
    if (held.compromised || (await this.#ownership(held)) !== 'ours') {
      this.#log.debug({ lock: n }, 'lock was already lost; nothing to release');
      return;
    }
    try {
      await held.release();
      this.#acquiredIdentity.delete(held.lockDir);
    } catch (err) {
      // Compromised meanwhile: proper-lockfile already let it go.
      if (errorCode(err) === 'ERELEASED') return;
      throw this.#storageError(`release lock "${n}"`, err);
    }
  }

  async assertLockHeld(name: string): Promise<void> {
    const n = validateLockName(name);
    const held = this.#held.get(n);
    if (!held) throw new LockLostError(n, `Lock "${n}" is not held by this storage instance`);
    if (held.compromised) throw new LockLostError(n);
    // Another process may take the lock once its mtime is stale; stop trusting
    // the lease a little before that (clock granularity, slow file systems).
    const margin = Math.min(1_000, this.options.lockStaleMs / 4);
    if (Date.now() - held.refreshedAt >= this.options.lockStaleMs - margin) {
      throw new LockLostError(n, `Lock "${n}" was not refreshed in time and may have been taken over`);
    }
    const ownership = await this.#ownership(held);
    if (ownership === 'missing') throw new LockLostError(n, `Lock "${n}" was removed by someone else`);
    if (ownership === 'taken') throw new LockLostError(n, `Lock "${n}" was taken over by another holder`);
  }

  /**
   * Test aid: behaves as if this holder froze or crashed while holding
   * `name`. The lock stops being refreshed but is not released, so another
   * holder takes it over after lockStaleMs.
   */
  abandonLock(name: string): void {
    const held = this.#held.get(validateLockName(name));
    if (held) held.abandoned = true;
  }

  /**
   * Removes temp files (`.tmp-*`, older than STALE_TEMP_FILE_MS) left below the root by writers killed
   * between write and rename; they may hold private keys. Runs once per instance, in the background from
   * the first operation on; resolves with how many were removed (close() stops it early).
   */
  sweepTempFiles(): Promise<number> {
    this.#sweep ??= this.#collectTempFiles().catch((err: unknown) => {
      this.#log.warn({ err }, 'could not sweep temp files left by interrupted writes');
      return 0;
    });
    return this.#sweep;
  }

  async #collectTempFiles(): Promise<number> {
    const cutoff = Date.now() - STALE_TEMP_FILE_MS;
    let removed = 0;
    const walk = async (dir: string): Promise<void> => {
      let entries: fs.Dirent[];
      try {
        entries = await readdir(dir, { withFileTypes: true });
      } catch {
        return;
      }
      for (const entry of entries) {
        if (this.#closing.signal.aborted) return;
        const path = join(dir, entry.name);
        // Dirents of symlinks are neither: links are never followed.
        if (entry.isDirectory()) {
          if (dir !== this.#root || entry.name !== LOCKS_FOLDER) await walk(path);
        } else if (entry.isFile() && TEMP_NAME.test(entry.name)) {
          const info = await lstat(path).catch(() => undefined);
          if (info && info.mtimeMs < cutoff && (await unlink(path).then(() => true, () => false))) removed++;
        }
      }
    };
    await walk(this.#root);
    if (removed > 0) this.#log.warn({ removed }, 'removed temp files left by interrupted writes');
    return removed;
  }

  /** Releases every lock this instance holds and cancels lock waits. Safe to call more than once. */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      this.#closing.abort();
      await this.#sweep;
      for (const name of [...this.#held.keys()]) {
        await this.unlock(name).catch((err: unknown) => {
          this.#log.warn({ lock: name, err }, 'could not release lock while closing');
        });
      }
    })();
    return this.#closed;
  }

  async #tryAcquire(name: string): Promise<boolean> {
    const file = join(this.#locksDir, name);
    const lockDir = `${file}.lock`;
    // A second lock() on a lock this instance holds must wait like everyone else
    // (locks are not re-entrant); never let it overwrite our own record.
    if (this.#held.has(name)) return false;
    const held: HeldLock = { release: async () => undefined, lockDir, mtimeMs: 0, identity: '', refreshedAt: Date.now(), compromised: false, abandoned: false };
    this.#byLockDir.set(lockDir, held);
    try {
      await this.#secureFolders(this.#locksDir, true);
      held.release = await lockfile.lock(file, {
        stale: this.options.lockStaleMs,
        update: this.options.lockRefreshMs,
        realpath: false,
        retries: 0,
        fs: this.#lockFs,
        onCompromised: (err) => {
          held.compromised = true;
          this.#log.warn({ lock: name, reason: err.message }, 'lock compromised: another holder may have taken it over');
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
      throw this.#storageError(`take lock "${name}"`, err);
    }
    if (this.#closing.signal.aborted) {
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
   * empty directory, but also a regular file (empty or not: an older
   * version, another tool, a crash), a directory with content, or a symlink
   * (removed, never followed). rmdir alone fails on all of those (ENOTDIR,
   * ENOTEMPTY) and the name could never be locked again. One warn per
   * takeover: a failure here is an error of this lock() call, never a loop
   * of log lines.
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
      const entries = await readdir(path);
      leftover = entries.length === 0 ? 'empty folder' : `folder with ${entries.length} entries`;
      if (entries.length === 0) await rmdirPromise(path).catch(ignoreMissing);
      else await rm(path, { recursive: true, force: true });
    } else {
      leftover = info.isFile() ? (info.size === 0 ? 'empty file' : `file of ${info.size} bytes`) : info.isSymbolicLink() ? 'symlink' : 'special file';
      await unlink(path).catch(ignoreMissing);
    }
    const lock = basename(path).replace(/\.lock$/, '');
    this.#log.warn({ lock, leftover, ageMs: Date.now() - info.mtime.getTime() }, 'taking over a stale lock');
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
        throw this.#storageError('check a lock', err);
      }
      if (held.compromised || directoryIdentity(info) !== held.identity) return 'taken';
      if (info.mtime.getTime() === held.mtimeMs) return 'ours';
      if (attempt >= 2) return 'taken';
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  #pathFor(key: string): string {
    const path = join(this.#root, ...keyComponents(key));
    // Defence in depth: validateKey already refuses anything that could climb out.
    const rel = relative(this.#root, path);
    if (rel === '' || rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel)) {
      throw new InvalidStorageKeyError(key, 'resolves outside the storage root');
    }
    return path;
  }

  /**
   * Creates `dir` and any missing parents (the root's included), one at a
   * time and each chmod'ed to exactly 0700: a restrictive umask must not leave
   * a directory we cannot create the next one in.
   */
  async #ensureDirectory(dir: string): Promise<void> {
    const missing: string[] = [];
    for (let d = dir; ; d = dirname(d)) {
      try {
        await stat(d);
        break;
      } catch (err) {
        if (errorCode(err) !== 'ENOENT' || dirname(d) === d) throw err;
        missing.push(d);
      }
    }
    for (const d of missing.reverse()) {
      try {
        await mkdir(d, { mode: DIRECTORY_MODE });
        await chmod(d, DIRECTORY_MODE);
      } catch (err) {
        // Another writer created it first.
        if (errorCode(err) !== 'EEXIST') throw err;
      }
    }
  }

  /**
   * Checks, and with `create` makes (0700), every folder from the root down
   * to `dir`. The root may be a symlink (an admin's choice: it is followed);
   * below it, a symlink is refused, never followed, and so is a folder owned
   * by another user (root excepted) or writable by group or others, as ssh's
   * StrictModes does for ~/.ssh. False when a folder is missing and `create`
   * is not set. A file where a folder should be is left for the operation
   * itself to report (ENOTDIR).
   */
  async #secureFolders(dir: string, create: boolean): Promise<boolean> {
    if (this.#secureDirs.has(dir)) return true;
    if (!this.#secureDirs.has(this.#root)) {
      let info: fs.Stats;
      try {
        info = await stat(this.#root);
      } catch (err) {
        if (errorCode(err) !== 'ENOENT') throw err;
        if (!create) return false;
        await this.#ensureDirectory(this.#root);
        info = await stat(this.#root);
      }
      if (!info.isDirectory()) return true;
      this.#assertNotWritableByOthers(this.#root, info, 'The storage root');
      this.#secureDirs.add(this.#root);
      void this.sweepTempFiles();
    }
    const rel = relative(this.#root, dir);
    if (rel === '') return true;
    let current = this.#root;
    for (const part of rel.split(sep)) {
      current = join(current, part);
      if (this.#secureDirs.has(current)) continue;
      let info: fs.Stats;
      try {
        info = await lstat(current);
      } catch (err) {
        if (errorCode(err) !== 'ENOENT') throw err;
        if (!create) return false;
        await mkdir(current, { mode: DIRECTORY_MODE }).catch((e: unknown) => {
          if (errorCode(e) !== 'EEXIST') throw e;
        });
        info = await lstat(current);
        // Ours, just made: exactly 0700 whatever the umask.
        if (info.isDirectory() && info.uid === this.#uid) {
          await chmod(current, DIRECTORY_MODE);
          info = await lstat(current);
        }
      }
      if (info.isSymbolicLink()) throw new StorageInsecureError(current, 'is a symbolic link below the storage root (links are never followed there)');
      if (!info.isDirectory()) return true;
      this.#assertNotWritableByOthers(current, info, 'A storage folder');
      this.#secureDirs.add(current);
    }
    return true;
  }

  #assertNotWritableByOthers(path: string, info: fs.Stats, what: string): void {
    if (this.#uid === undefined) return;
    if (info.uid !== this.#uid && info.uid !== 0) {
      throw new StorageInsecureError(path, `${what} is owned by uid ${info.uid}, not by this process's user (uid ${this.#uid}) or root; another user could have put what it holds there`);
    }
    if ((info.mode & 0o022) !== 0) {
      const mode = (info.mode & 0o7777).toString(8).padStart(4, '0');
      throw new StorageInsecureError(path, `${what} is writable by other users (mode ${mode}); run chmod go-w on it`);
    }
  }

  /** Reads a file without following a symlink, refusing one another user owns or can write. */
  async #readNoFollow(path: string): Promise<Buffer> {
    let fd: number;
    try {
      fd = await openFd(path, fs.constants.O_RDONLY | O_NOFOLLOW);
    } catch (err) {
      if (errorCode(err) === 'ELOOP') throw new StorageInsecureError(path, 'is a symbolic link below the storage root (links are never followed there)');
      throw err;
    }
    try {
      const info = await fstatFd(fd);
      if (info.isFile()) this.#assertNotWritableByOthers(path, info, 'A stored file');
      return await readFile(fd);
    } finally {
      await closeFd(fd).catch(() => undefined);
    }
  }

  /** After deleting a folder: it and everything below must be checked again if they come back. */
  #forgetFolders(path: string): void {
    const below = path + sep;
    for (const dir of this.#secureDirs) if (dir === path || dir.startsWith(below)) this.#secureDirs.delete(dir);
  }

  #abortedWaiting(name: string, signal: AbortSignal | undefined): Error {
    if (!signal?.aborted) return new ClosedError('FileStorage');
    return new AbortedError(`Waiting for lock "${name}" was aborted`, { cause: signal.reason });
  }

  #storageError(action: string, err: unknown): StorageError {
    if (err instanceof StorageError || err instanceof InvalidStorageKeyError) return err;
    if (err instanceof CertKeeperError) return err as StorageError;
    const code = errorCode(err);
    const hint = code === 'EROFS' || code === 'EACCES' || code === 'EPERM' ? ' (is the storage directory writable by this user?)' : '';
    return new StorageError(`Could not ${action} in ${this.#root}: ${code ?? 'unknown error'}${hint}`, { cause: err });
  }

  #assertOpen(): void {
    if (this.#closed) throw new ClosedError('FileStorage');
  }
}

async function pauseForKill(temp: string): Promise<never> {
  process.stdout.write(`${JSON.stringify({ event: 'paused-before-rename', temp })}\n`);
  setInterval(() => undefined, 60_000);
  return new Promise<never>(() => undefined);
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

function errorCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && typeof (err as { code?: unknown }).code === 'string'
    ? (err as { code: string }).code
    : undefined;
}

function ignoreMissing(err: unknown): void {
  if (errorCode(err) !== 'ENOENT') throw err;
}

function isMissing(err: unknown): boolean {
  const code = errorCode(err);
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/** Makes a rename durable: the directory entry itself must reach the disk. */
async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } catch (err) {
    // Some file systems cannot fsync a directory; the data itself is already synced.
    if (errorCode(err) !== 'EINVAL' && errorCode(err) !== 'EPERM') throw err;
  } finally {
    await handle.close();
  }
}
