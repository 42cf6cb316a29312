/**
 * A CA's Retry-After for a name that has no certificate yet, kept in storage.
 *
 * A renewal's backoff lives in the certificate's sidecar. A first obtain has
 * no sidecar, so without this a restart (or a crash loop) would ask the CA
 * again at once, although it said when to come back. Only waits the CA asked
 * for (AcmeRateLimitedError.retryAt) are kept: after an ordinary failure a
 * restart tries again, since the operator has likely fixed something.
 */
import { StorageNotFoundError } from '../errors.js';
import { obtainWaitKey } from '../storage/layout.js';
import type { Storage } from '../storage/types.js';
import { parseBackoffState, type BackoffState } from './backoff.js';

export async function loadObtainWait(storage: Storage, certName: string): Promise<BackoffState | undefined> {
  let raw: Uint8Array;
  try {
    raw = await storage.load(obtainWaitKey(certName));
  } catch (error) {
    if (error instanceof StorageNotFoundError) return undefined;
    throw error;
  }
  try {
    return parseBackoffState(JSON.parse(Buffer.from(raw).toString('utf8')));
  } catch {
    return undefined; // unreadable: as if absent
  }
}

export async function saveObtainWait(storage: Storage, certName: string, state: BackoffState): Promise<void> {
  await storage.store(obtainWaitKey(certName), Buffer.from(JSON.stringify(state)));
}

export async function clearObtainWait(storage: Storage, certName: string): Promise<void> {
  try {
    await storage.delete(obtainWaitKey(certName));
  } catch (error) {
    if (!(error instanceof StorageNotFoundError)) throw error;
  }
}
