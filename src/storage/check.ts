/**
 * A storage that cannot be written must be found before any CA call, not
 * after a certificate has been issued and then lost (certmagic does the same
 * check before each obtain).
 */
import { randomBytes } from 'node:crypto';
import { CertKeeperError, StorageError } from '../errors.js';
import type { Storage } from './types.js';

/** Size of the probe value: big enough to catch a full disk or a size limit, small enough to be cheap. */
export const STORAGE_CHECK_BYTES = 10 * 1024;
/** Probe values live here, one unique key per check, so concurrent checks never collide. */
export const STORAGE_CHECK_PREFIX = 'rw_test';

/**
 * Writes a random 10 KiB value under a unique key, reads it back, compares
 * and deletes it. Throws StorageError saying which step failed.
 */
export async function checkStorageWritable(storage: Storage): Promise<void> {
  const key = `${STORAGE_CHECK_PREFIX}/${Date.now()}-${randomBytes(8).toString('hex')}`;
  const value = randomBytes(STORAGE_CHECK_BYTES);
  let stored = false;
  try {
    await step('write to', () => storage.store(key, value));
    stored = true;
    const back = await step('read back from', () => storage.load(key));
    if (!value.equals(back)) {
      throw new StorageError(`Storage check failed: the value read back from "${key}" differs from the value written`);
    }
    await step('delete from', () => storage.delete(key));
    stored = false;
  } finally {
    if (stored) await storage.delete(key).catch(() => undefined);
  }
}

async function step<T>(action: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    const code = err instanceof CertKeeperError ? err.code : undefined;
    throw new StorageError(`Storage check failed: cannot ${action} storage${code ? ` (${code})` : ''}: ${reason}`, { cause: err });
  }
}
