/**
 * The storage contract, after certmagic's: a key/value store with `/`-separated
 * keys and named locks. Implementations must make `store` atomic for one key
 * (a reader sees the old or the new value, never a mix) and throw
 * StorageNotFoundError for missing keys. Optional capabilities are detected at
 * run time.
 */
export interface KeyInfo {
  key: string;
  modified: Date;
  size: number;
  /** False for a "directory" (a prefix of other keys). */
  isTerminal: boolean;
}

export interface LockOptions {
  signal?: AbortSignal | undefined;
  /** Give up with LockTimeoutError after this many milliseconds (default: wait until aborted). */
  timeoutMs?: number | undefined;
}

export interface Locker {
  /** Blocks until the named lock is held by this process. */
  lock(name: string, options?: LockOptions): Promise<void>;
  /** Releases a lock this process holds; releasing a lock it does not hold is a no-op. */
  unlock(name: string): Promise<void>;
}

export interface TryLocker {
  /** Takes the lock if free, without waiting; true when taken. */
  tryLock(name: string): Promise<boolean>;
}

export interface LockLeaseChecker {
  /**
   * Throws LockLostError when this process no longer holds `name` (its lease
   * expired and another holder may have taken it). Called right before a final
   * write, so a paused process never overwrites newer data.
   */
  assertLockHeld(name: string): Promise<void>;
}

/**
 * One write of a fenced group: store a value, or delete a key (and, for a prefix, everything under it).
 * `unordered`: consecutive writes marked so form a run whose members may become durable in any order among
 * themselves (a crash may leave any of them applied); the run as a whole stays after the writes before it and
 * before the writes after it. A file system can then sync a folder once per run instead of once per file.
 */
export type FencedWrite = ({ key: string; value: Uint8Array } | { key: string; delete: true }) & { unordered?: boolean };

export interface FencedWriter {
  /** Applies every write atomically, and only while `lock` is still held by this instance under the fencing token it was granted
   *  (each grant of a lock gets a token greater than every earlier grant of that lock); otherwise writes nothing and throws LockLostError. */
  writeFenced(lock: string, writes: readonly FencedWrite[]): Promise<void>;
}

export interface FolderLister {
  /**
   * The names (last component only, not the whole key) of the folders directly under `prefix`: the entries of
   * list(prefix, false) that have keys below them, without the prefix, in no set order; [] when there are none
   * (never StorageNotFoundError). For a storage's largest listing, a million certificate folders of 3 keys each,
   * an adapter answers this without sending every key below (the core then reads a third as much, and parses
   * no key paths); the core falls back to list() when a storage does not have it.
   */
  listFolders(prefix: string): Promise<string[]>;
}

export interface StoreOptions {
  /**
   * Default true. false: a short-lived value (a write probe, a challenge token deleted within its order) that
   * need not survive a crash: still written atomically, but a file system does not sync it to disk.
   */
  durable?: boolean | undefined;
}

export interface Storage extends Locker {
  store(key: string, value: Uint8Array, options?: StoreOptions): Promise<void>;
  /** Throws StorageNotFoundError when missing. */
  load(key: string): Promise<Buffer>;
  /** Deletes the key and, for a prefix, everything under it. Deleting a missing key is not an error. */
  delete(key: string): Promise<void>;
  exists(key: string): Promise<boolean>;
  /** Keys directly under `prefix` (or all below it when recursive); throws StorageNotFoundError when none. */
  list(prefix: string, recursive: boolean): Promise<string[]>;
  /** Throws StorageNotFoundError when missing. */
  stat(key: string): Promise<KeyInfo>;
  /** Releases resources (connections, refresh timers, this process's locks). Idempotent. */
  close?(): Promise<void>;
}

export function hasTryLock(storage: Storage): storage is Storage & TryLocker {
  return typeof (storage as Partial<TryLocker>).tryLock === 'function';
}

export function hasLockLeaseCheck(storage: Storage): storage is Storage & LockLeaseChecker {
  return typeof (storage as Partial<LockLeaseChecker>).assertLockHeld === 'function';
}

export function hasFencedWrites(storage: Storage): storage is Storage & FencedWriter {
  return typeof (storage as Partial<FencedWriter>).writeFenced === 'function';
}

export function hasFolderListing(storage: Storage): storage is Storage & FolderLister {
  return typeof (storage as Partial<FolderLister>).listFolders === 'function';
}
