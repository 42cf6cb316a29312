/**
 * A name's failure state, kept in storage for every name, with a certificate
 * or without one: consecutive failures, when the next attempt is allowed, the
 * last error, and whether the CA's answer was final (rejectedIdentifier...).
 *
 * Written under the name's lock when an attempt fails, deleted when one
 * succeeds, and read under the lock before every order, so restarts and every
 * process sharing the storage honour one backoff (Let's Encrypt counts failed
 * validations per name, not per process). A renewal's state is also kept in
 * the certificate's sidecar, as before; this record is the one every path reads.
 */
import { AcmeRateLimitedError, BackoffError, ERROR_CODES } from '../errors.js';
import { writeUnderLock, put } from '../storage/fenced.js';
import { listIfExists, loadIfExists } from '../storage/load-if-exists.js';
import { failureStateKey, safeKeyComponent } from '../storage/layout.js';
import type { Storage } from '../storage/types.js';
import { parseBackoffState, type BackoffState } from './backoff.js';

export interface FailureState extends BackoffState {
  /** The CA's answer cannot change by retrying: no automatic attempt until a forced renew. */
  final?: boolean | undefined;
}

export async function loadFailureState(storage: Storage, certName: string): Promise<FailureState | undefined> {
  const raw = await loadIfExists(storage, failureStateKey(certName));
  if (raw === undefined) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(raw.toString('utf8'));
  } catch {
    return undefined; // unreadable: as if absent
  }
  const state = parseBackoffState(value);
  if (state === undefined || state.failures < 1) return undefined;
  return (value as { final?: unknown }).final === true ? { ...state, final: true } : state;
}

/** `lock`: the name's lock when the caller holds it; the write is then refused once the lock is lost. */
export async function saveFailureState(storage: Storage, certName: string, state: FailureState, lock?: string): Promise<void> {
  const lastError = state.lastError
    ? { message: state.lastError.message, at: state.lastError.at, ...(isKnownErrorCode(state.lastError.code) ? { code: state.lastError.code } : {}) }
    : undefined;
  const record = { failures: state.failures, nextAttemptAt: state.nextAttemptAt, ...(lastError ? { lastError } : {}), ...(state.final ? { final: true } : {}) };
  await writeUnderLock(storage, lock, [put(failureStateKey(certName), JSON.stringify(record))]);
}

export async function clearFailureState(storage: Storage, certName: string, lock?: string): Promise<void> {
  // Deleting a missing key is not an error (the Storage contract).
  await writeUnderLock(storage, lock, [{ key: failureStateKey(certName), delete: true }]);
}

/** Key components (safeKeyComponent of a certificate name) that have a failure state: one list call, not one read per name. */
export async function listFailureStates(storage: Storage): Promise<Set<string>> {
  const keys = await listIfExists(storage, failureStateKey('x').split('/')[0] as string);
  return new Set(keys.map((k) => k.slice(k.lastIndexOf('/') + 1)).filter((f) => f.endsWith('.json')).map((f) => f.slice(0, -'.json'.length)));
}

export function hasFailureState(listed: ReadonlySet<string>, certName: string): boolean {
  return listed.has(safeKeyComponent(certName));
}

/** The error to report while a state forbids an attempt at `now`, or undefined when an attempt may go ahead. */
export function blockedBy(certName: string, state: FailureState | undefined, now: number): BackoffError | AcmeRateLimitedError | undefined {
  if (state === undefined) return undefined;
  if (state.final === true) return new BackoffError(certName, state);
  if (state.nextAttemptAt <= now) return undefined;
  // A wait the CA asked for keeps its own type (the caller may act on retryAt).
  if (state.lastError?.code === 'ERR_ACME_RATE_LIMITED') {
    const at = new Date(state.nextAttemptAt).toISOString();
    return new AcmeRateLimitedError(`the CA asked not to be asked again before ${at} (${state.lastError.message})`, state.nextAttemptAt);
  }
  return new BackoffError(certName, state);
}

/** Only codes of the README's table are persisted (a foreign `code`, such as a Node errno, is left out). */
export function isKnownErrorCode(code: string | undefined): code is string {
  return code !== undefined && Object.hasOwn(ERROR_CODES, code);
}
