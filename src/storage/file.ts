/**
 * Storage on the local file system, shareable by several processes (and
 * machines on a POSIX shared file system) through one root directory.
 *
 * Writes are atomic and durable (temp file in the same directory, fsync,
 * rename, fsync of the directory), so a crash or a full disk never leaves a
 * truncated file behind (caddy#6481, caddy#4897). Files are 0600 and
 * directories 0700 whatever the umask, because they hold private keys
 * (file-safety.ts). Locks are directories (file-locks.ts).
 *
 * Fenced writes: the values are staged in the grant's folder inside the lock
 * directory, then renamed into place one by one. A takeover removes the whole
 * lock directory first, so once a peer holds the lock every rename of a
 * frozen holder finds no source and fails: its write is refused (LockLostError)
 * by the same system call that would have applied it. A delete is fenced the
 * same way, as a rename into the grant folder.
 */
import { setMaxListeners } from 'node:events';
import { lstat, open, readdir, rename, rm, stat, unlink } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { CertKeeperError, InvalidStorageKeyError, LockLostError, StorageError, StorageInsecureError, StorageNotFoundError } from '../errors.js';
import type { Logger } from '../logger.js';
import { Closable } from '../lifecycle.js';
import { createKeyEncryptor, sealWrites, type KeyEncryptor } from './encryption.js';
import { FILE_MODE, LOCKS_FOLDER, TEMP_NAME, TEMP_SWEEP_DELAY_MS, resolveFileStorageOptions, type FileStorageOptions, type ResolvedFileStorageOptions } from './file-options.js';
import { FileLocks } from './file-locks.js';
import { FolderGuard, errorCode, isMissing, syncDirectory } from './file-safety.js';
import { sweepStaleTempFiles } from './file-sweep.js';
import { joinKey, validateKey, validateLockName, validatePrefix } from './keys.js';
import type { FencedWrite, FencedWriter, KeyInfo, LockLeaseChecker, LockOptions, Storage, StoreOptions, TryLocker } from './types.js';
export * from './file-options.js';

/**
 * Fault-test hook, only under the test runner (CERTKEEPER_TEST=1): a store() whose key contains this
 * string stops between writing its temp file and renaming it, says so on stdout, and waits to be killed.
 */
const FAULT_BEFORE_RENAME = process.env.CERTKEEPER_TEST === '1' ? process.env.CERTKEEPER_FAULT_BEFORE_RENAME : undefined;

export class FileStorage extends Closable implements Storage, TryLocker, LockLeaseChecker, FencedWriter {
  readonly options: ResolvedFileStorageOptions;
  readonly #root: string;
  readonly #log: Logger;
  readonly #encryptor: KeyEncryptor | undefined;
  readonly #guard: FolderGuard;
  readonly #locks: FileLocks;
  /** The one sweep of stale temp files, started TEMP_SWEEP_DELAY_MS after the first operation. */
  #sweep: Promise<number> | undefined;
  #sweepTimer: NodeJS.Timeout | undefined;

  constructor(options: FileStorageOptions = {}) {
    super('FileStorage');
    // Every operation in flight listens on this long-lived signal; more than 10 at once is normal, not a leak.
    setMaxListeners(0, this.closeSignal);
    this.options = resolveFileStorageOptions(options);
    this.#encryptor = options.encryptionKey === undefined ? undefined : createKeyEncryptor(options.encryptionKey);
    this.#root = this.options.root;
    this.#log = this.options.logger.child({ component: 'file-storage' });
    this.#guard = new FolderGuard(this.#root, () => this.#scheduleSweep());
    this.#locks = new FileLocks({
      locksDir: join(this.#root, LOCKS_FOLDER),
      lockStaleMs: this.options.lockStaleMs,
      lockRefreshMs: this.options.lockRefreshMs,
      log: this.#log,
      guard: this.#guard,
      closeSignal: this.closeSignal,
      storageError: (action, err) => this.#storageError(action, err),
    });
  }

  get root(): string {
    return this.#root;
  }

  async store(key: string, plain: Uint8Array, options: StoreOptions = {}): Promise<void> {
    this.assertOpen();
    const k = validateKey(key);
    const value = this.#encryptor ? this.#encryptor.seal(k, plain) : plain;
    const path = this.#guard.pathFor(k);
    const dir = dirname(path);
    const temp = join(dir, tempName());
    // A short-lived value (probe, challenge token) is not synced: each sync costs the disk a flush.
    const durable = options.durable !== false;
    try {
      await this.track(
        (async () => {
          await this.#guard.secureFolders(dir, true);
          try {
            await writeSynced(temp, value, durable);
          } catch (err) {
            // Deleted since it was checked (delete() of a prefix): created again by us, 0700.
            if (errorCode(err) !== 'ENOENT') throw err;
            await this.#guard.ensureDirectory(dir);
            await writeSynced(temp, value, durable);
          }
          if (FAULT_BEFORE_RENAME && k.includes(FAULT_BEFORE_RENAME)) await pauseForKill(temp);
          await rename(temp, path);
          if (durable) await syncDirectory(dir);
        })(),
      );
    } catch (err) {
      await unlink(temp).catch(() => undefined);
      throw this.#storageError(`write "${k}"`, err);
    }
  }

  /**
   * Applies the writes in order, each atomically and each only while this
   * instance still holds `lock` under its grant (see the header). A file
   * system has no multi-file transaction: a takeover between two writes
   * leaves the earlier ones applied (certificate sets stay whole through
   * their `.pending` copy, which comes first). A folder is synced after each
   * rename into it, or once after a run of `unordered` writes.
   */
  async writeFenced(lock: string, writes: readonly FencedWrite[]): Promise<void> {
    this.assertOpen();
    const n = validateLockName(lock);
    const planned = sealWrites(writes, this.#encryptor);
    const grantDir = this.#locks.grantDir(n);
    /** Staged copies not renamed into place (yet): removed at the end. */
    const staged = new Set<string>();
    try {
      await this.track(
        (async () => {
          // Every value is on disk in the grant folder before the first one lands. The staged
          // copies are written (and synced) side by side: only the renames below are ordered.
          const written = await Promise.allSettled(
            planned.map(async (w) => {
              if ('delete' in w) return undefined;
              const temp = join(grantDir, tempName());
              await writeSynced(temp, w.value).catch((err: unknown) => {
                throw errorCode(err) === 'ENOENT' ? lostBeforeWrite(n) : err;
              });
              staged.add(temp);
              return temp;
            }),
          );
          const failed = written.find((r): r is PromiseRejectedResult => r.status === 'rejected');
          if (failed) throw failed.reason;
          const sources = written.map((r) => (r.status === 'fulfilled' ? r.value : undefined));
          // Folders renamed into and not synced yet: a run of `unordered` writes shares one sync per folder.
          const unsynced = new Set<string>();
          for (const [i, w] of planned.entries()) {
            const source = sources[i];
            if (source === undefined) await this.#fencedDelete(n, grantDir, w.key);
            else {
              unsynced.add(await this.#fencedRename(n, source, w.key));
              staged.delete(source);
            }
            if (w.unordered === true && planned[i + 1]?.unordered === true) continue;
            await Promise.all([...unsynced].map((dir) => syncDirectory(dir)));
            unsynced.clear();
          }
        })(),
      );
    } catch (err) {
      throw this.#storageError(`write under lock "${n}"`, err);
    } finally {
      for (const temp of staged) await unlink(temp).catch(() => undefined);
    }
  }

  /** Renames a staged value into place; returns the folder, which the caller syncs. */
  async #fencedRename(lock: string, source: string, key: string): Promise<string> {
    const path = this.#guard.pathFor(key);
    const dir = dirname(path);
    await this.#guard.secureFolders(dir, true);
    if (FAULT_BEFORE_RENAME && key.includes(FAULT_BEFORE_RENAME)) await pauseForKill(source);
    try {
      await rename(source, path);
    } catch (err) {
      if (errorCode(err) !== 'ENOENT') throw err;
      // No source: the lock directory was removed by a takeover. No target folder: made again, 0700.
      if (!(await present(source))) throw lostBeforeWrite(lock);
      await this.#guard.ensureDirectory(dir);
      await rename(source, path).catch((again: unknown) => {
        throw errorCode(again) === 'ENOENT' ? lostBeforeWrite(lock) : again;
      });
    }
    return dir;
  }

  async #fencedDelete(lock: string, grantDir: string, key: string): Promise<void> {
    const path = this.#guard.pathFor(key);
    const trash = join(grantDir, `.del-${randomBytes(8).toString('hex')}`);
    const folderThere = await this.#guard.secureFolders(dirname(path), false);
    try {
      if (folderThere) await rename(path, trash);
    } catch (err) {
      if (!isMissing(err)) throw err;
    }
    // Nothing to delete is fine, but only while the grant still holds.
    if (!(await present(grantDir))) throw lostBeforeWrite(lock);
    await rm(trash, { recursive: true, force: true });
    this.#guard.forgetFolders(path);
  }

  async load(key: string): Promise<Buffer> {
    this.assertOpen();
    const k = validateKey(key);
    try {
      const path = this.#guard.pathFor(k);
      if (!(await this.#guard.secureFolders(dirname(path), false))) throw new StorageNotFoundError(k);
      const stored = await this.#guard.readNoFollow(path);
      return this.#encryptor ? this.#encryptor.open(k, stored) : stored;
    } catch (err) {
      if (err instanceof StorageNotFoundError) throw err;
      if (isMissing(err) || errorCode(err) === 'EISDIR') throw new StorageNotFoundError(k, { cause: err });
      throw this.#storageError(`read "${k}"`, err);
    }
  }

  async delete(key: string): Promise<void> {
    this.assertOpen();
    const k = validateKey(key);
    try {
      const path = this.#guard.pathFor(k);
      if (!(await this.#guard.secureFolders(dirname(path), false))) return;
      // rm never follows a symlink, at the top or inside.
      await this.track(rm(path, { recursive: true, force: true }));
      this.#guard.forgetFolders(path);
    } catch (err) {
      if (isMissing(err)) return;
      throw this.#storageError(`delete "${k}"`, err);
    }
  }

  async exists(key: string): Promise<boolean> {
    this.assertOpen();
    const k = validateKey(key);
    try {
      const path = this.#guard.pathFor(k);
      if (!(await this.#guard.secureFolders(dirname(path), false))) return false;
      if ((await lstat(path)).isSymbolicLink()) throw new StorageInsecureError(path, 'is a symbolic link below the storage root');
      return true;
    } catch (err) {
      if (isMissing(err)) return false;
      throw this.#storageError(`check "${k}"`, err);
    }
  }

  async list(prefix: string, recursive: boolean): Promise<string[]> {
    this.assertOpen();
    const p = validatePrefix(prefix);
    const found: string[] = [];
    const walk = async (keyPrefix: string, dir: string): Promise<void> => {
      if (!(await this.#guard.secureFolders(dir, false))) throw new StorageNotFoundError(keyPrefix);
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
      await walk(p, p === '' ? this.#root : this.#guard.pathFor(p));
    } catch (err) {
      if (err instanceof StorageNotFoundError || isMissing(err)) throw new StorageNotFoundError(p, { cause: err });
      throw this.#storageError(`list "${p}"`, err);
    }
    if (found.length === 0) throw new StorageNotFoundError(p);
    return found.sort();
  }

  async stat(key: string): Promise<KeyInfo> {
    this.assertOpen();
    const k = validateKey(key);
    try {
      const path = this.#guard.pathFor(k);
      if (!(await this.#guard.secureFolders(dirname(path), false))) throw new StorageNotFoundError(k);
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
    this.assertOpen();
    return this.track(this.#locks.tryLock(validateLockName(name)));
  }

  async lock(name: string, options: LockOptions = {}): Promise<void> {
    this.assertOpen();
    return this.track(this.#locks.lock(validateLockName(name), options));
  }

  async unlock(name: string): Promise<void> {
    return this.#locks.unlock(validateLockName(name));
  }

  async assertLockHeld(name: string): Promise<void> {
    return this.#locks.assertLockHeld(validateLockName(name));
  }

  /**
   * Test aid: behaves as if this holder froze or crashed while holding
   * `name`. The lock stops being refreshed but is not released, so another
   * holder takes it over after lockStaleMs.
   */
  abandonLock(name: string): void {
    this.#locks.abandonLock(validateLockName(name));
  }

  /**
   * Removes temp files (`.tmp-*`, older than STALE_TEMP_FILE_MS) left below the root by writers killed
   * between write and rename; they may hold private keys. Runs once per instance, in the background from
   * TEMP_SWEEP_DELAY_MS after the first operation (or now, when called); resolves with how many were
   * removed (close() stops it early).
   */
  sweepTempFiles(): Promise<number> {
    clearTimeout(this.#sweepTimer);
    this.#sweep ??= sweepStaleTempFiles(this.#root, this.closeSignal).then(
      (removed) => {
        if (removed > 0) this.#log.warn({ removed }, 'removed temp files left by interrupted writes');
        return removed;
      },
      (err: unknown) => {
        this.#log.warn({ err }, 'could not sweep temp files left by interrupted writes');
        return 0;
      },
    );
    return this.#sweep;
  }

  /**
   * The sweep reads every folder below the root (10,000 names: 10,000 readdirs, about a second of CPU on
   * a busy machine): it waits so that it never competes with start-up, where the same folders are read
   * to serve. It can only remove files older than STALE_TEMP_FILE_MS anyway.
   */
  #scheduleSweep(): void {
    if (this.#sweep !== undefined || this.#sweepTimer !== undefined || this.closed) return;
    this.#sweepTimer = setTimeout(() => void this.sweepTempFiles(), TEMP_SWEEP_DELAY_MS);
    this.#sweepTimer.unref();
  }

  /** Runs once, after close() cancelled lock waits and writes in flight settled: releases every lock held. */
  protected async onClose(): Promise<void> {
    clearTimeout(this.#sweepTimer);
    await this.#sweep;
    await this.#locks.releaseAll();
  }

  #storageError(action: string, err: unknown): StorageError {
    if (err instanceof StorageError || err instanceof InvalidStorageKeyError) return err;
    if (err instanceof CertKeeperError) return err as StorageError;
    const code = errorCode(err);
    const hint = code === 'EROFS' || code === 'EACCES' || code === 'EPERM' ? ' (is the storage directory writable by this user?)' : '';
    return new StorageError(`Could not ${action} in ${this.#root}: ${code ?? 'unknown error'}${hint}`, { cause: err });
  }
}

function tempName(): string {
  return `.tmp-${randomBytes(8).toString('hex')}`;
}

/** Creates `path` (never an existing file), exactly 0600, with `value`, synced to disk unless `sync` is false. */
async function writeSynced(path: string, value: Uint8Array, sync = true): Promise<void> {
  const handle = await open(path, 'wx', FILE_MODE);
  try {
    // The umask may have narrowed the mode given to open; set it exactly.
    await handle.chmod(FILE_MODE);
    await handle.writeFile(value);
    if (sync) await handle.sync();
  } finally {
    await handle.close();
  }
}

async function present(path: string): Promise<boolean> {
  return stat(path).then(() => true, () => false);
}

function lostBeforeWrite(lock: string): LockLostError {
  return new LockLostError(lock, `Lock "${lock}" was taken over by another holder before this write; nothing was overwritten`);
}

async function pauseForKill(temp: string): Promise<never> {
  process.stdout.write(`${JSON.stringify({ event: 'paused-before-rename', temp })}\n`);
  setInterval(() => undefined, 60_000);
  return new Promise<never>(() => undefined);
}

