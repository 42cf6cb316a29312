/**
 * Bounded retry of one ACME operation. Each attempt runs the whole operation
 * again, so a retried request is signed again with a fresh nonce (acme-client's
 * own replay of the same signed body is switched off in trust.ts).
 */
import { sleep, type Clock } from '../clock.js';
import { AbortedError, AcmeProblemError, AcmeRateLimitedError, AcmeUnavailableError, throwIfAborted } from '../errors.js';
import type { Logger } from '../logger.js';
import type { CaGate } from './ca-gate.js';
import { AcmeNetworkError, isProblem } from './problem.js';
import { DEFAULT_RETRY_POLICY } from '../defaults.js';
export { DEFAULT_RETRY_POLICY };

import type { RetryPolicy } from '../kinds.js';
export type { RetryPolicy };


export interface RetryContext {
  policy: Readonly<RetryPolicy>;
  clock: Clock;
  signal?: AbortSignal | undefined;
  logger?: Logger | undefined;
  /** Short name of the operation, for logs. */
  what: string;
  /** The CA's shared state: its Retry-After holds every request to it, this one's included. */
  gate?: CaGate | undefined;
}

/** The typed error for a Retry-After that cannot be waited for here: 503 means unavailable, anything else rate limited. */
function waitError(error: AcmeProblemError, retryAt: number, message = error.message): AcmeUnavailableError | AcmeRateLimitedError {
  return error.status === 503
    ? new AcmeUnavailableError(message, retryAt, { cause: error })
    : new AcmeRateLimitedError(message, retryAt, { cause: error });
}

type Decision = { retry: false } | { retry: true; delayMs: number; reason: string };

function decide(error: unknown, attempt: number, policy: Readonly<RetryPolicy>, now: number): Decision {
  const backoff = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1));
  if (isProblem(error, 'badNonce')) {
    // acme-client already retried with the nonces from the error responses; one more fresh attempt.
    return { retry: true, delayMs: 0, reason: 'badNonce' };
  }
  if (error instanceof AcmeProblemError) {
    const status = error.status ?? 0;
    const rateLimited = status === 429 || isProblem(error, 'rateLimited');
    if (error.retryAfterMs !== undefined && (rateLimited || status === 503)) {
      if (error.retryAfterMs > policy.maxRetryAfterMs) {
        throw waitError(
          error,
          now + error.retryAfterMs,
          `${error.message}; Retry-After ${Math.ceil(error.retryAfterMs / 1000)} s exceeds the ${policy.maxRetryAfterMs / 1000} s limit`,
        );
      }
      return { retry: true, delayMs: error.retryAfterMs, reason: `HTTP ${status} Retry-After` };
    }
    if (rateLimited) {
      // A rate limit without Retry-After: retrying at once would only spend more of the limit.
      throw new AcmeRateLimitedError(error.message, now + policy.maxRetryAfterMs, { cause: error });
    }
    if (status >= 500) return { retry: true, delayMs: backoff, reason: `HTTP ${status}` };
    return { retry: false };
  }
  if (error instanceof AcmeNetworkError && error.transient) {
    return { retry: true, delayMs: backoff, reason: error.networkCode ?? 'network error' };
  }
  return { retry: false };
}

export async function withRetry<T>(operation: (attempt: number) => Promise<T>, ctx: RetryContext): Promise<T> {
  const { policy, clock, signal, gate } = ctx;
  const deadline = clock.now() + policy.deadlineMs;
  let badNonceRetries = 0;
  for (let attempt = 1; ; attempt++) {
    throwIfAborted(signal);
    const until = gate?.blockedUntil();
    if (gate && until !== undefined) {
      // The CA asked every client to wait (possibly in another name's request): no request before then.
      if (until - clock.now() > policy.maxRetryAfterMs || until > deadline) throw gate.error();
      ctx.logger?.debug({ operation: ctx.what, delayMs: until - clock.now() }, 'waiting for the CA\'s Retry-After');
      await abortableSleep(clock, until - clock.now(), signal);
    }
    try {
      return await operation(attempt);
    } catch (error) {
      throwIfAborted(signal);
      if (isProblem(error, 'badNonce') && badNonceRetries < policy.maxBadNonceRetries && clock.now() < deadline) {
        badNonceRetries++;
        attempt--;
        ctx.logger?.debug({ operation: ctx.what, badNonceRetries }, 'retrying ACME request after badNonce');
        continue;
      }
      if (gate?.observe(error)) {
        // The wait holds for the whole CA: the top of the loop waits for it, or fails typed.
        if (attempt >= policy.maxAttempts) throw gate.error();
        continue;
      }
      if (attempt >= policy.maxAttempts) {
        if (error instanceof AcmeProblemError && error.retryAfterMs !== undefined && (error.status === 429 || error.status === 503)) {
          throw waitError(error, clock.now() + error.retryAfterMs);
        }
        throw error;
      }
      const decision = decide(error, attempt, policy, clock.now());
      if (!decision.retry) throw error;
      if (clock.now() + decision.delayMs > deadline) {
        if (error instanceof AcmeProblemError && error.retryAfterMs !== undefined) {
          throw waitError(error, clock.now() + decision.delayMs);
        }
        throw error;
      }
      ctx.logger?.debug({ operation: ctx.what, attempt, delayMs: decision.delayMs, reason: decision.reason }, 'retrying ACME request');
      if (decision.delayMs > 0) await abortableSleep(clock, decision.delayMs, signal);
    }
  }
}

async function abortableSleep(clock: Clock, ms: number, signal: AbortSignal | undefined): Promise<void> {
  try {
    await sleep(clock, ms, signal);
  } catch (reason) {
    throw new AbortedError('The operation was aborted', { cause: reason });
  }
}
