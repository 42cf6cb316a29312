/**
 * Delivery of one notification: a signed JSON POST, or an exec hook fed the
 * JSON on stdin, each with a timeout per attempt and retries with doubling
 * delays. Neither the webhook's URL (it may carry a token) nor its secret nor
 * the hook's output ever reaches a log or an error: only the status code or
 * the kind of failure does.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { runProcess } from '../child-process.js';
import { sleep, type Clock } from '../clock.js';
import { NotificationError } from '../errors.js';
import type { ResolvedNotify, ResolvedSink } from './options.js';
import { DEFAULT_SIGNATURE_TOLERANCE_SECONDS } from '../defaults.js';
export { DEFAULT_SIGNATURE_TOLERANCE_SECONDS };

export const SIGNATURE_HEADER = 'x-certkeeper-signature';
export const TIMESTAMP_HEADER = 'x-certkeeper-timestamp';
export const EVENT_HEADER = 'x-certkeeper-event';
export const DELIVERY_HEADER = 'x-certkeeper-delivery';

/** `sha256=<hex>` of HMAC-SHA256(secret, `<timestamp>.<body>`): the timestamp is signed, so a replayed body with a new time fails. */
export function signNotification(secret: string, timestamp: number, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

/**
 * For receivers: true when `signature` is the body's signature at `timestamp`
 * and the timestamp is within `toleranceSeconds` of `now` (epoch ms).
 */
export function verifyNotificationSignature(input: {
  secret: string;
  body: string;
  signature: string | undefined;
  timestamp: string | undefined;
  now?: number;
  toleranceSeconds?: number;
}): boolean {
  const timestamp = Number(input.timestamp);
  if (!input.signature || !Number.isInteger(timestamp)) return false;
  const now = (input.now ?? Date.now()) / 1000;
  if (Math.abs(now - timestamp) > (input.toleranceSeconds ?? DEFAULT_SIGNATURE_TOLERANCE_SECONDS)) return false;
  const expected = Buffer.from(signNotification(input.secret, timestamp, input.body));
  const given = Buffer.from(input.signature);
  return expected.length === given.length && timingSafeEqual(expected, given);
}

export interface DeliveryContext {
  clock: Clock;
  /** Stops further attempts (close()); the attempt under way finishes or times out, so a last notification is not cut off. */
  signal: AbortSignal;
  /** Called before each retry, with the failure that caused it (for a warn-level log line). */
  onRetry?: (attempt: number, reason: string) => void;
}

export interface OutgoingNotification {
  type: string;
  key: string;
  body: string;
}

/** A failure worth retrying, or not (a 4xx other than 408/429 will not change). */
class AttemptError extends Error {
  constructor(
    message: string,
    readonly retryable: boolean,
  ) {
    super(message);
  }
}

async function withRetries(sink: 'webhook' | 'exec', config: ResolvedSink, notification: OutgoingNotification, context: DeliveryContext, attempt: () => Promise<void>): Promise<number> {
  let delay = config.retryDelayMs;
  for (let n = 1; ; n++) {
    try {
      await attempt();
      return n;
    } catch (error) {
      if (context.signal.aborted) throw new NotificationError(sink, notification, n, 'aborted', { cause: context.signal.reason });
      const failure = error instanceof AttemptError ? error : new AttemptError(String((error as Error).message), true);
      if (!failure.retryable || n > config.retries) throw new NotificationError(sink, notification, n, failure.message);
      context.onRetry?.(n, failure.message);
      await sleep(context.clock, delay, context.signal).catch(() => {
        throw new NotificationError(sink, notification, n, 'aborted', { cause: context.signal.reason });
      });
      delay *= 2;
    }
  }
}

/** POSTs the body, signed; resolves with the number of attempts made, rejects with NotificationError. */
export function deliverWebhook(config: Exclude<ResolvedNotify['webhook'], false>, notification: OutgoingNotification, context: DeliveryContext): Promise<number> {
  return withRetries('webhook', config, notification, context, async () => {
    const timestamp = Math.floor(context.clock.now() / 1000);
    const signal = AbortSignal.timeout(config.timeoutMs);
    let response: Response;
    try {
      response = await fetch(config.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'user-agent': 'certkeeper-notify',
          [TIMESTAMP_HEADER]: String(timestamp),
          [SIGNATURE_HEADER]: signNotification(config.secret, timestamp, notification.body),
          [EVENT_HEADER]: notification.type,
          [DELIVERY_HEADER]: notification.key,
        },
        body: notification.body,
        redirect: 'manual',
        signal,
      });
    } catch (error) {
      // The cause's code (ECONNREFUSED...) or the timeout, never the URL.
      const cause = (error as { cause?: { code?: unknown } }).cause;
      const what = signal.aborted ? `timed out after ${config.timeoutMs} ms` : typeof cause?.code === 'string' ? cause.code : (error as Error).name;
      throw new AttemptError(what, true);
    }
    await response.body?.cancel().catch(() => {});
    if (response.status >= 200 && response.status < 300) return;
    const retryable = response.status >= 500 || response.status === 408 || response.status === 429;
    throw new AttemptError(`HTTP ${response.status}`, retryable);
  });
}

/** Runs the hook (no shell) with the body on stdin; success is exit code 0. Its output is discarded, never logged. */
export function deliverExec(config: Exclude<ResolvedNotify['exec'], false>, notification: OutgoingNotification, context: DeliveryContext): Promise<number> {
  return withRetries('exec', config, notification, context, async () => {
    const result = await runProcess(config.command as [string, ...string[]], {
      env: { ...process.env, CERTKEEPER_NOTIFICATION: notification.type, CERTKEEPER_NOTIFICATION_KEY: notification.key },
      timeoutMs: config.timeoutMs,
      // No signal: close() lets the attempt under way finish or time out (see DeliveryContext.signal).
      killGraceMs: 0,
      capture: 'none',
      captureBytes: 0,
      stdin: notification.body,
    });
    if (result.spawnError) throw new AttemptError(`could not start the hook (${result.spawnError.code ?? result.spawnError.name})`, false);
    if (result.code === 0) return;
    const timedOut = result.stopped === 'timeout';
    throw new AttemptError(timedOut ? `timed out after ${config.timeoutMs} ms` : result.signal ? `killed by ${result.signal}` : `exited with code ${result.code}`, true);
  });
}
