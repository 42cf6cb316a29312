/**
 * One HTTP exchange with a CA's revocation endpoint: a timeout per attempt,
 * a bounded number of retries with doubling delays (timed by the injected
 * clock), and a cap on the answer's size so a broken or hostile endpoint
 * cannot fill memory.
 */
import { sleep, type Clock } from '../clock.js';
import { RevocationFetchError, type RevocationSource } from './errors.js';

export interface FetchSettings {
  timeoutMs: number;
  retries: number;
  retryDelayMs: number;
  maxBytes: number;
  clock: Clock;
  signal: AbortSignal;
}

export interface RevocationRequest {
  source: RevocationSource;
  url: string;
  /** POST with this body (an OCSP request); GET without. */
  body?: Buffer | undefined;
  contentType?: string | undefined;
}

/** The answer's bytes; rejects with RevocationFetchError after the last attempt (or at once when aborted). */
export async function fetchRevocationData(request: RevocationRequest, settings: FetchSettings): Promise<Buffer> {
  let delay = settings.retryDelayMs;
  for (let attempt = 0; ; attempt++) {
    try {
      return await attemptOnce(request, settings);
    } catch (error) {
      const failure = error as AttemptFailure;
      if (settings.signal.aborted || !failure.retryable || attempt >= settings.retries) {
        throw new RevocationFetchError(request.source, request.url, settings.signal.aborted ? 'aborted' : failure.message);
      }
      await sleep(settings.clock, delay, settings.signal).catch(() => {
        throw new RevocationFetchError(request.source, request.url, 'aborted');
      });
      delay *= 2;
    }
  }
}

class AttemptFailure extends Error {
  constructor(
    message: string,
    readonly retryable: boolean,
  ) {
    super(message);
  }
}

async function attemptOnce(request: RevocationRequest, settings: FetchSettings): Promise<Buffer> {
  const timeout = AbortSignal.timeout(settings.timeoutMs);
  const signal = AbortSignal.any([timeout, settings.signal]);
  let response: Response;
  try {
    response = await fetch(request.url, {
      method: request.body ? 'POST' : 'GET',
      headers: { 'user-agent': 'certkeeper-revocation', ...(request.contentType ? { 'content-type': request.contentType } : {}) },
      ...(request.body ? { body: request.body } : {}),
      signal,
    });
  } catch (error) {
    const cause = (error as { cause?: { code?: unknown } }).cause;
    throw new AttemptFailure(timeout.aborted ? `timed out after ${settings.timeoutMs} ms` : typeof cause?.code === 'string' ? cause.code : (error as Error).name, true);
  }
  if (response.status !== 200) {
    await response.body?.cancel().catch(() => undefined);
    throw new AttemptFailure(`HTTP ${response.status}`, response.status >= 500 || response.status === 408 || response.status === 429);
  }
  const declared = Number(response.headers.get('content-length') ?? NaN);
  if (declared > settings.maxBytes) {
    await response.body?.cancel().catch(() => undefined);
    throw new AttemptFailure(`the answer is larger than ${settings.maxBytes} bytes`, false);
  }
  return readBounded(response, settings.maxBytes, () => timeout.aborted, settings.timeoutMs);
}

async function readBounded(response: Response, maxBytes: number, timedOut: () => boolean, timeoutMs: number): Promise<Buffer> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = response.body?.getReader();
  if (!reader) return Buffer.alloc(0);
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > maxBytes) {
        await reader.cancel().catch(() => undefined);
        throw new AttemptFailure(`the answer is larger than ${maxBytes} bytes`, false);
      }
      chunks.push(value);
    }
  } catch (error) {
    if (error instanceof AttemptFailure) throw error;
    throw new AttemptFailure(timedOut() ? `timed out after ${timeoutMs} ms` : 'the answer was cut off', true);
  }
  return Buffer.concat(chunks);
}
