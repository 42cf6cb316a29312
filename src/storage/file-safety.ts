/**
 * Path safety and ownership for FileStorage: keys map to paths that cannot
 * leave the root; below the root no symlink is followed and no folder or
 * file another user owns or can write is trusted (as ssh's StrictModes does
 * for ~/.ssh); new folders are exactly 0700 whatever the umask.
 */
import * as fs from 'node:fs';
import { chmod, lstat, mkdir, open, stat } from 'node:fs/promises';
import { promisify } from 'node:util';
import { dirname, isAbsolute, join, relative, sep } from 'node:path';
import { InvalidStorageKeyError, StorageInsecureError } from '../errors.js';
import { DIRECTORY_MODE } from './file-options.js';
import { keyComponents } from './keys.js';

// fs/promises.readFile reads in several chunks and is about 2.5x slower for small files (100,000 sidecars at start-up).
const readFile = promisify(fs.readFile);
const openFd = promisify(fs.open);
const fstatFd = promisify(fs.fstat);
const closeFd = promisify(fs.close);
/** Opening the final component never follows a symlink (0 where the platform has no such flag). */
const O_NOFOLLOW = fs.constants.O_NOFOLLOW ?? 0;

export class FolderGuard {
  readonly #root: string;
  /** This process's uid; undefined where there is none (Windows): ownership and mode checks are POSIX only. */
  readonly #uid: number | undefined = typeof process.getuid === 'function' ? process.getuid() : undefined;
  /**
   * Folders (the root and below) already checked: real folders, not symlinks, owned by us or root, not
   * writable by group or others. Nobody else can change a checked folder's entries, so one check per
   * folder per instance is enough.
   */
  readonly #secureDirs = new Set<string>();
  readonly #onRootChecked: () => void;

  /** `onRootChecked` runs once, the first time the root is found and checked. */
  constructor(root: string, onRootChecked: () => void) {
    this.#root = root;
    this.#onRootChecked = onRootChecked;
  }

  pathFor(key: string): string {
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
  async ensureDirectory(dir: string): Promise<void> {
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
   * by another user (root excepted) or writable by group or others. False
   * when a folder is missing and `create` is not set. A file where a folder
   * should be is left for the operation itself to report (ENOTDIR).
   */
  async secureFolders(dir: string, create: boolean): Promise<boolean> {
    if (this.#secureDirs.has(dir)) return true;
    if (!this.#secureDirs.has(this.#root)) {
      let info: fs.Stats;
      try {
        info = await stat(this.#root);
      } catch (err) {
        if (errorCode(err) !== 'ENOENT') throw err;
        if (!create) return false;
        await this.ensureDirectory(this.#root);
        info = await stat(this.#root);
      }
      if (!info.isDirectory()) return true;
      this.assertNotWritableByOthers(this.#root, info, 'The storage root');
      this.#secureDirs.add(this.#root);
      this.#onRootChecked();
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
      this.assertNotWritableByOthers(current, info, 'A storage folder');
      this.#secureDirs.add(current);
    }
    return true;
  }

  assertNotWritableByOthers(path: string, info: fs.Stats, what: string): void {
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
  async readNoFollow(path: string): Promise<Buffer> {
    let fd: number;
    try {
      fd = await openFd(path, fs.constants.O_RDONLY | O_NOFOLLOW);
    } catch (err) {
      if (errorCode(err) === 'ELOOP') throw new StorageInsecureError(path, 'is a symbolic link below the storage root (links are never followed there)');
      throw err;
    }
    try {
      const info = await fstatFd(fd);
      if (info.isFile()) this.assertNotWritableByOthers(path, info, 'A stored file');
      return await readFile(fd);
    } finally {
      await closeFd(fd).catch(() => undefined);
    }
  }

  /** After deleting `path`: it and everything below must be checked again if they come back. */
  forgetFolders(path: string): void {
    if (!this.#secureDirs.has(path)) return;
    const below = path + sep;
    for (const dir of this.#secureDirs) if (dir === path || dir.startsWith(below)) this.#secureDirs.delete(dir);
  }
}

export function errorCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && typeof (err as { code?: unknown }).code === 'string'
    ? (err as { code: string }).code
    : undefined;
}

export function ignoreMissing(err: unknown): void {
  if (errorCode(err) !== 'ENOENT') throw err;
}

export function isMissing(err: unknown): boolean {
  const code = errorCode(err);
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/** Test hook, set only by tests: sees each folder right before it is synced (what a crash there would leave). */
export const directorySyncHooks: { beforeSync: ((dir: string) => void) | undefined } = { beforeSync: undefined };

/** Makes a rename durable: the directory entry itself must reach the disk. */
export async function syncDirectory(dir: string): Promise<void> {
  directorySyncHooks.beforeSync?.(dir);
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
