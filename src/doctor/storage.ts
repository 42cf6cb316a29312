/** The storage: a write/read/delete round trip and its lock. */
import { checkStorageWritable } from '../storage/check.js';
import type { Storage } from '../storage/types.js';
import { DEFAULT_DOCTOR_TIMEOUT_MS } from '../defaults.js';
import type { CheckResult } from './result.js';

/** Lock name used to prove the storage's lock works. */
export const DOCTOR_LOCK_NAME = 'doctor_check';

/** The storage takes a write/read/delete round trip, and its lock can be taken and released. */
export async function checkStorage(storage: Storage, options: { timeoutMs?: number | undefined; signal?: AbortSignal | undefined } = {}): Promise<CheckResult> {
  const check = 'storage';
  try {
    await checkStorageWritable(storage);
  } catch (error) {
    return { check, status: 'fail', detail: (error as Error).message, remedy: 'fix permissions or free space, or point --storage somewhere writable' };
  }
  try {
    await storage.lock(DOCTOR_LOCK_NAME, { timeoutMs: options.timeoutMs ?? DEFAULT_DOCTOR_TIMEOUT_MS, signal: options.signal });
    await storage.unlock(DOCTOR_LOCK_NAME);
  } catch (error) {
    return { check, status: 'fail', detail: `writable, but its lock failed: ${(error as Error).message}`, remedy: 'remove a stale lock left by a crashed process, or check the lock backend' };
  }
  return { check, status: 'pass', detail: 'writable, readable, and its lock works' };
}
