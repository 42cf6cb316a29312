import { InvalidOptionError, isCertKeeperError } from '../errors.js';
import { DEFAULT_BACKOFF_JITTER_RATIO, DEFAULT_BACKOFF_MIN_INTERVAL_MS, DEFAULT_BACKOFF_STEPS_MS } from '../defaults.js';
export { DEFAULT_BACKOFF_STEPS_MS, DEFAULT_BACKOFF_JITTER_RATIO, DEFAULT_BACKOFF_MIN_INTERVAL_MS };



export interface BackoffOptions {
  /** Waits after the 1st, 2nd, ... failure; the last one repeats. */
  steps?: readonly number[] | undefined;
  /** Random extra wait as a fraction of the step, in [0, 1]; 0 disables it. */
  jitter?: number | undefined;
  /** Never retry sooner than this after a failure (the CA's per-identifier failure limits). */
  minIntervalMs?: number | undefined;
  /** The certificate being renewed expires then (epoch ms): a wait that would skip past it is shortened. */
  notAfter?: number | undefined;
  /** The CA's Retry-After (epoch ms): never retry before it, whatever else says. */
  retryAfter?: number | undefined;
  /** Returns a number in [0, 1); injectable for tests. */
  random?: (() => number) | undefined;
}

/**
 * When to try again after `failures` consecutive failures (1 after the first),
 * the last of them at `now`.
 *
 * While the certificate in service is still valid, a wait that would run past
 * its notAfter is cut to half the time left (but not below `minIntervalMs`),
 * so the last day does not pass without another attempt. A CA's Retry-After
 * always wins: retrying before it only fails again.
 */
export function nextAttemptAt(failures: number, now: number, options: BackoffOptions = {}): number {
  if (!Number.isInteger(failures) || failures < 1) {
    throw new InvalidOptionError('failures', 'must be an integer >= 1');
  }
  const steps = options.steps ?? DEFAULT_BACKOFF_STEPS_MS;
  if (!Array.isArray(steps) || steps.length === 0 || !steps.every((s) => Number.isFinite(s) && s >= 0)) {
    throw new InvalidOptionError('backoff.steps', 'must be a non-empty array of non-negative millisecond values');
  }
  const jitter = options.jitter ?? DEFAULT_BACKOFF_JITTER_RATIO;
  if (typeof jitter !== 'number' || !(jitter >= 0 && jitter <= 1)) {
    throw new InvalidOptionError('backoff.jitter', 'must be a number in [0, 1]');
  }
  const minInterval = options.minIntervalMs ?? DEFAULT_BACKOFF_MIN_INTERVAL_MS;
  if (!Number.isFinite(minInterval) || minInterval < 0) {
    throw new InvalidOptionError('backoff.minIntervalMs', 'must be a non-negative number of milliseconds');
  }
  const random = options.random ?? Math.random;
  const step = steps[Math.min(failures, steps.length) - 1] as number;
  let wait = Math.max(minInterval, step + Math.floor(step * jitter * unit(random())));
  const { notAfter } = options;
  if (notAfter !== undefined && now < notAfter && now + wait > notAfter) {
    wait = Math.max(minInterval, Math.floor((notAfter - now) / 2));
  }
  let at = now + wait;
  if (options.retryAfter !== undefined && options.retryAfter > at) at = options.retryAfter;
  return at;
}

/** What the manager keeps in a certificate's sidecar between attempts, so a restart does not reset the backoff. */
export interface BackoffState {
  /** Consecutive failures; 0 after a success. */
  failures: number;
  /** Epoch ms of the next allowed attempt. */
  nextAttemptAt: number;
  lastError?: BackoffError | undefined;
}

export interface BackoffError {
  /** The error's stable code (CertKeeperError) when it has one. */
  code?: string | undefined;
  message: string;
  /** Epoch ms of the failure. */
  at: number;
}

/** The state after one more failure at `now`. */
export function recordFailure(previous: BackoffState | undefined, error: unknown, now: number, options: BackoffOptions = {}): BackoffState {
  const failures = (previous?.failures ?? 0) + 1;
  return { failures, nextAttemptAt: nextAttemptAt(failures, now, options), lastError: summarizeError(error, now) };
}

/** Reads a state back from sidecar JSON; anything malformed is treated as "no failures recorded". */
export function parseBackoffState(value: unknown): BackoffState | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const v = value as Record<string, unknown>;
  if (!Number.isInteger(v['failures']) || (v['failures'] as number) < 0) return undefined;
  if (typeof v['nextAttemptAt'] !== 'number' || !Number.isFinite(v['nextAttemptAt'])) return undefined;
  const state: BackoffState = { failures: v['failures'] as number, nextAttemptAt: v['nextAttemptAt'] };
  const last = v['lastError'];
  if (typeof last === 'object' && last !== null) {
    const l = last as Record<string, unknown>;
    if (typeof l['message'] === 'string' && typeof l['at'] === 'number') {
      state.lastError = { message: l['message'], at: l['at'], ...(typeof l['code'] === 'string' ? { code: l['code'] } : {}) };
    }
  }
  return state;
}

const MAX_ERROR_MESSAGE = 500;

function summarizeError(error: unknown, at: number): BackoffError {
  const message = error instanceof Error ? error.message : String(error);
  // Only certkeeper's documented codes are persisted; a system or library code (ECONNREFUSED, ERR_NETWORK) stays in the message.
  const code = isCertKeeperError(error) ? error.code : undefined;
  return {
    message: message.length > MAX_ERROR_MESSAGE ? `${message.slice(0, MAX_ERROR_MESSAGE)}…` : message,
    at,
    ...(code === undefined ? {} : { code }),
  };
}

function unit(value: number): number {
  if (!(value >= 0)) return 0;
  return value >= 1 ? 1 - Number.EPSILON : value;
}
