/**
 * "Load, or nothing if missing": the one place that turns a storage's
 * StorageNotFoundError into `undefined` (or an empty listing). Every other
 * error (a broken storage, an insecure folder) still reaches the caller.
 */
import { StorageNotFoundError } from '../errors.js';
import type { Storage } from './types.js';

/** What `read` returns, or undefined when it found nothing stored (StorageNotFoundError). */
export async function ifExists<T>(read: () => Promise<T>): Promise<T | undefined> {
  try {
    return await read();
  } catch (error) {
    if (error instanceof StorageNotFoundError) return undefined;
    throw error;
  }
}

/** The stored value, or undefined when nothing is stored under `key`. */
export function loadIfExists(storage: Pick<Storage, 'load'>, key: string): Promise<Buffer | undefined> {
  return ifExists(() => storage.load(key));
}

/** The keys directly below `prefix`, or none when nothing is stored there. */
export async function listIfExists(storage: Pick<Storage, 'list'>, prefix: string): Promise<string[]> {
  return (await ifExists(() => storage.list(prefix, false))) ?? [];
}
