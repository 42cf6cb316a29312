/**
 * What every renewalInfo request to one CA shares within a process, whatever
 * the number of certificates or issuers: a token bucket (so a drill over
 * thousands of certificates asks at a steady rate, never in one burst), one
 * request at a time per certificate (concurrent asks for the same certID share
 * it: certmagic #297 sent 33 for one serial in one second), and the pause a
 * 429 or 503 with Retry-After asked for, during which nothing is sent.
 *
 * Keyed by directory URL per Clock, like the CA gate (times are comparable on one clock only).
 */
import type { Clock } from '../clock.js';
import { AcmeProblemError, AcmeRateLimitedError } from '../errors.js';
import { DEFAULT_ARI_RATE_LIMIT } from '../defaults.js';
import { TokenBucket, type RateLimitSpec } from '../limits/token-bucket.js';

export interface AriLimiterStats {
  /** renewalInfo requests sent through this limiter. */
  requests: number;
  /** Asks answered by a request already in flight for the same certificate. */
  shared: number;
  /** Asks refused without a request because of a Retry-After pause. */
  paused: number;
}

export class AriLimiter {
  readonly directoryUrl: string;
  readonly #clock: Clock;
  readonly #bucket: TokenBucket;
  readonly #inflight = new Map<string, Promise<unknown>>();
  #pausedUntil = 0;
  readonly stats: AriLimiterStats = { requests: 0, shared: 0, paused: 0 };

  constructor(directoryUrl: string, clock: Clock, spec: Readonly<RateLimitSpec>) {
    this.directoryUrl = directoryUrl;
    this.#clock = clock;
    this.#bucket = new TokenBucket({ ...spec, clock });
  }

  get spec(): Readonly<RateLimitSpec> {
    return { capacity: this.#bucket.capacity, refillAmount: this.#bucket.refillAmount, refillIntervalMs: this.#bucket.refillIntervalMs };
  }

  /** Epoch ms until which the CA asked for no renewalInfo request, if it did. */
  pausedUntil(): number | undefined {
    return this.#pausedUntil > this.#clock.now() ? this.#pausedUntil : undefined;
  }

  /**
   * Runs `request` for `certId` after a token, unless one for the same certificate is in flight (then its
   * answer is shared). Throws AcmeRateLimitedError, without a request, while a Retry-After pause runs.
   */
  run<T>(certId: string, request: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    const running = this.#inflight.get(certId);
    if (running) {
      this.stats.shared++;
      return running as Promise<T>;
    }
    const started = this.#send(request, signal).finally(() => {
      if (this.#inflight.get(certId) === started) this.#inflight.delete(certId);
    });
    this.#inflight.set(certId, started);
    return started;
  }

  async #send<T>(request: () => Promise<T>, signal: AbortSignal | undefined): Promise<T> {
    this.#throwIfPaused();
    await this.#bucket.take(signal);
    // The pause may have begun while this ask waited for its token.
    this.#throwIfPaused();
    this.stats.requests++;
    try {
      return await request();
    } catch (error) {
      this.#observe(error);
      throw error;
    }
  }

  #throwIfPaused(): void {
    const until = this.pausedUntil();
    if (until === undefined) return;
    this.stats.paused++;
    throw new AcmeRateLimitedError(`The CA at ${this.directoryUrl} asked for no renewalInfo request before ${new Date(until).toISOString()}`, until);
  }

  /** A 429 or 503 with Retry-After on renewalInfo holds every certificate's request to this CA, not only this one's. */
  #observe(error: unknown): void {
    if (!(error instanceof AcmeProblemError) || error.retryAfterMs === undefined) return;
    if (error.status !== 429 && error.status !== 503) return;
    this.#pausedUntil = Math.max(this.#pausedUntil, this.#clock.now() + error.retryAfterMs);
  }
}

const limiters = new WeakMap<Clock, Map<string, AriLimiter>>();

/** The one renewalInfo limiter of `directoryUrl` on `clock` (`spec` applies when it is made). */
export function ariLimiter(directoryUrl: string, clock: Clock, spec: Readonly<RateLimitSpec> = DEFAULT_ARI_RATE_LIMIT): AriLimiter {
  let byUrl = limiters.get(clock);
  if (!byUrl) {
    byUrl = new Map();
    limiters.set(clock, byUrl);
  }
  let limiter = byUrl.get(directoryUrl);
  if (!limiter) {
    limiter = new AriLimiter(directoryUrl, clock, spec);
    byUrl.set(directoryUrl, limiter);
  }
  return limiter;
}
