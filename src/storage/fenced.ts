/**
 * Writes done under a lock. A lease can run out while its holder is paused
 * (a long GC pause, SIGSTOP, a VM stolen for seconds) between its last lease
 * check and its write; a storage with fenced writes refuses such a write in
 * the same step that would apply it. Every write certkeeper makes under a
 * lock (certificate sets, sidecar updates, accounts, the internal CA,
 * failure state) goes through writeUnderLock.
 */
import { hasFencedWrites, hasLockLeaseCheck, type FencedWrite, type Storage } from './types.js';

/** Applies `writes` in order, each on its own (no lock, or a storage without fenced writes). */
export async function applyWrites(storage: Storage, writes: readonly FencedWrite[]): Promise<void> {
  for (const write of writes) {
    if ('delete' in write) await storage.delete(write.key);
    else await storage.store(write.key, write.value);
  }
}

/**
 * Test hook, set only by tests: runs after the lease check and before the write, so a test can freeze a
 * holder exactly there while a peer takes its lock over.
 */
export const lockedWriteHooks: { afterLeaseCheck: ((lock: string) => Promise<void>) | undefined } = { afterLeaseCheck: undefined };

/**
 * Writes while holding `lock` (when given): one fenced write where the storage
 * has them, else a lease check right before plain writes (the gap that fencing
 * closes stays open there). Throws LockLostError when the lock was lost.
 */
export async function writeUnderLock(storage: Storage, lock: string | undefined, writes: readonly FencedWrite[]): Promise<void> {
  if (lock === undefined) return applyWrites(storage, writes);
  // Cheap and early: a lost lease is reported before any staging work.
  if (hasLockLeaseCheck(storage)) await storage.assertLockHeld(lock);
  await lockedWriteHooks.afterLeaseCheck?.(lock);
  if (hasFencedWrites(storage)) return storage.writeFenced(lock, writes);
  return applyWrites(storage, writes);
}

/** A store write of a UTF-8 string or bytes. */
export function put(key: string, value: string | Uint8Array): FencedWrite {
  return { key, value: typeof value === 'string' ? Buffer.from(value, 'utf8') : value };
}
