/**
 * A storage that cannot be written must be found before any CA call, not
 * after a certificate has been issued and then lost (certmagic does the same
 * check before each obtain).
 */
import { randomBytes } from 'node:crypto';
import { CertKeeperError, StorageError, StorageNotFoundError as NotFound } from '../errors.js';
import type { CertificateKeys } from './layout.js';
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

/** Size of the probe written in a certificate's own folder. */
export const CERTIFICATE_PROBE_BYTES = 64;

/**
 * Proves that a certificate set can be stored at its own path before it is
 * ordered: the general check above writes elsewhere, so a file where the
 * certificate's folder should be (ENOTDIR) or a read-only folder would only
 * show after the CA had issued, and the certificate would be lost on every
 * attempt. Writes, reads back and deletes `keys.probe`; a folder that was
 * empty before is removed again. Call it holding the certificate's lock.
 */
export async function checkCertificateWritable(storage: Storage, keys: Pick<CertificateKeys, 'prefix' | 'probe'>): Promise<void> {
  const wasEmpty = await step('list', () => storage.list(keys.prefix, false).then(
    (found) => found.length === 0,
    (error: unknown) => {
      if (error instanceof NotFound) return true;
      throw error;
    },
  ));
  const value = randomBytes(CERTIFICATE_PROBE_BYTES);
  let stored = false;
  try {
    // Read back and deleted at once: it proves the folder can be written, not that the disk keeps it.
    await step('write to', () => storage.store(keys.probe, value, { durable: false }));
    stored = true;
    const back = await step('read back from', () => storage.load(keys.probe));
    if (!value.equals(back)) {
      throw new StorageError(`Storage check failed: the value read back from "${keys.probe}" differs from the value written`);
    }
    // Nothing else writes here while the lock is held, so an empty folder is ours to remove.
    await step('delete from', () => storage.delete(wasEmpty ? keys.prefix : keys.probe));
    stored = false;
  } finally {
    if (stored) await storage.delete(keys.probe).catch(() => undefined);
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
