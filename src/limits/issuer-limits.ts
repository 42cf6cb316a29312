/**
 * One order rate limiter per issuer: the configured `rateLimit`, none with
 * `rateLimit: false`, and otherwise Let's Encrypt's published new-order limit
 * for its directories (a CA we know nothing about is not throttled).
 */
import type { Clock } from '../clock.js';
import { Closable } from '../lifecycle.js';
import { createRateLimiter, RATE_LIMIT_PRESETS, UnlimitedRateLimiter, type RateLimiter, type RateLimitSpec } from './token-bucket.js';

export interface IssuerToLimit {
  readonly key: string;
  /** The ACME directory, for issuers that have one. */
  readonly directoryUrl?: string | undefined;
}

export class IssuerRateLimits extends Closable {
  readonly #configured: Readonly<RateLimitSpec> | false | undefined;
  readonly #clock: Clock;
  readonly #limiters = new Map<string, RateLimiter>();

  constructor(configured: Readonly<RateLimitSpec> | false | undefined, clock: Clock) {
    super('IssuerRateLimits');
    this.#configured = configured;
    this.#clock = clock;
  }

  /** The limiter of an issuer, made on first use. */
  for(issuer: IssuerToLimit): RateLimiter {
    let limiter = this.#limiters.get(issuer.key);
    if (!limiter) {
      limiter = this.#select(issuer);
      this.#limiters.set(issuer.key, limiter);
    }
    return limiter;
  }

  protected async onClose(): Promise<void> {
    await Promise.all([...this.#limiters.values()].map((limiter) => limiter.close()));
  }

  #select(issuer: IssuerToLimit): RateLimiter {
    const configured = this.#configured;
    if (configured === false) return new UnlimitedRateLimiter();
    if (configured !== undefined) return createRateLimiter(configured, this.#clock);
    if (issuer.directoryUrl?.includes('api.letsencrypt.org') === true) return createRateLimiter(RATE_LIMIT_PRESETS.letsencrypt, this.#clock);
    return new UnlimitedRateLimiter();
  }
}
