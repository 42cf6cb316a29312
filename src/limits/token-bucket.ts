import { systemClock, type Clock, type TimerHandle } from '../clock.js';
import { WaitQueue } from './wait-queue.js';
import { AbortedError, ClosedError, InvalidOptionError } from '../errors.js';
import { Closable } from '../lifecycle.js';

export interface RateLimitSpec {
  /** Tokens when full: the largest burst. */
  capacity: number;
  /** Tokens added every `refillIntervalMs`. */
  refillAmount: number;
  refillIntervalMs: number;
}

/**
 * Published CA limits on new orders per account, as token buckets. The CA
 * enforces them; pacing ourselves just below keeps renewals out of
 * `rateLimited` errors. Every issuer's value is configurable.
 *
 * Let's Encrypt (letsencrypt.org/docs/rate-limits, 2025): 300 new orders per
 * account per 3 hours, refilling one every 36 seconds, bursts up to 300. Its
 * staging limits are higher; the production numbers are used as a safe bound.
 * Pebble and private CAs have no published limit: `'unlimited'`.
 */
export const RATE_LIMIT_PRESETS = Object.freeze({
  letsencrypt: Object.freeze({ capacity: 300, refillAmount: 1, refillIntervalMs: 36_000 }),
  'letsencrypt-staging': Object.freeze({ capacity: 300, refillAmount: 1, refillIntervalMs: 36_000 }),
  unlimited: 'unlimited',
} as const satisfies Record<string, Readonly<RateLimitSpec> | 'unlimited'>);

export type RateLimitPresetName = keyof typeof RATE_LIMIT_PRESETS;

/**
 * Let's Encrypt's failed-authorization limit per identifier per account
 * (5 per hour, one back every 12 minutes). Informs the backoff's minimum
 * interval; not a bucket the manager needs to run.
 */
export const LETSENCRYPT_FAILED_AUTHORIZATIONS_PER_IDENTIFIER: Readonly<RateLimitSpec> = Object.freeze({
  capacity: 5,
  refillAmount: 1,
  refillIntervalMs: 12 * 60_000,
});

/** What a rate limit option may be: a preset name, a bucket, `'unlimited'`, or `false` (no limit). */
export type RateLimitOption = RateLimitPresetName | RateLimitSpec | 'unlimited' | false;

/**
 * A token promised to one operation that has not started yet (an admitted on-demand order waiting for an
 * order slot): nobody else can take it, and it leaves the bucket only at consume(), so the bucket bounds
 * when operations START, not when they were admitted. Exactly one of consume() / release() counts.
 */
export interface Reservation {
  /** The operation starts now: the token leaves the bucket (it is always there: reserved tokens are never taken by others). */
  consume(): void;
  /** The operation will not start: the token is free again. A no-op after consume() or a first release(). */
  release(): void;
}

/** Something that paces operations: a TokenBucket or the unlimited stand-in. */
export interface RateLimiter {
  /** Claims a free token without taking it yet, or undefined at once when none is free (nothing waits). */
  reserve(): Reservation | undefined;
  /** Resolves when a token has been taken; waits in FIFO order. Rejects with AbortedError/ClosedError. */
  take(signal?: AbortSignal): Promise<void>;
  /** Takes a token if one is free now and nobody is waiting. */
  tryTake(): boolean;
  /** Whether tryTake() would succeed now, without taking the token. */
  hasToken(): boolean;
  /** Rejects every waiter with ClosedError; idempotent. */
  close(): Promise<void>;
}

export interface TokenBucketOptions extends RateLimitSpec {
  clock?: Clock | undefined;
}

/**
 * A token bucket that starts full and refills `refillAmount` tokens every
 * `refillIntervalMs` up to `capacity`. Waiters are served first-come,
 * first-served by one timer armed for the next refill.
 */
export class TokenBucket extends Closable implements RateLimiter {
  readonly capacity: number;
  readonly refillAmount: number;
  readonly refillIntervalMs: number;
  readonly #clock: Clock;
  #tokens: number;
  /** Tokens promised to reservations not consumed yet: always <= #tokens, so a consume() never finds the bucket empty. */
  #reserved = 0;
  #lastRefill: number;
  readonly #waiters = new WaitQueue('Waiting for a rate limit token was aborted', () => {
    if (this.#waiters.size === 0) this.#cancelTimer();
  });
  #timer: TimerHandle | undefined;

  constructor(options: TokenBucketOptions) {
    super('TokenBucket');
    const spec = validateRateLimitSpec(options, 'rateLimit');
    this.capacity = spec.capacity;
    this.refillAmount = spec.refillAmount;
    this.refillIntervalMs = spec.refillIntervalMs;
    this.#clock = options.clock ?? systemClock;
    this.#tokens = this.capacity;
    this.#lastRefill = this.#clock.now();
  }

  /** Tokens free now (reserved ones excluded). */
  get available(): number {
    this.#refill();
    return this.#tokens - this.#reserved;
  }

  /** Tokens promised to reservations not consumed or released yet. */
  get reserved(): number {
    return this.#reserved;
  }

  /** Callers waiting for a token. */
  get waiting(): number {
    return this.#waiters.size;
  }

  tryTake(): boolean {
    if (this.closed) throw new ClosedError('TokenBucket');
    this.#refill();
    if (this.#waiters.size > 0 || this.#tokens - this.#reserved < 1) return false;
    this.#tokens--;
    return true;
  }

  hasToken(): boolean {
    if (this.closed) throw new ClosedError('TokenBucket');
    this.#refill();
    return this.#waiters.size === 0 && this.#tokens - this.#reserved >= 1;
  }

  reserve(): Reservation | undefined {
    if (!this.hasToken()) return undefined;
    this.#reserved++;
    let open = true;
    const settle = (consumed: boolean): void => {
      if (!open) return;
      open = false;
      this.#reserved--;
      if (consumed) {
        // Refill first: a reservation held across refills must not make a full bucket skip the ones it missed.
        this.#refill();
        this.#tokens--;
      } else this.#hand();
    };
    return { consume: () => settle(true), release: () => settle(false) };
  }

  take(signal?: AbortSignal): Promise<void> {
    if (this.closed) return Promise.reject(new ClosedError('TokenBucket'));
    if (signal?.aborted) return Promise.reject(new AbortedError('Waiting for a rate limit token was aborted', { cause: signal.reason }));
    if (this.tryTake()) return Promise.resolve();
    const waiting = this.#waiters.wait(signal);
    this.#armTimer();
    return waiting;
  }

  /** Rejects every waiter with ClosedError and cancels the timer; idempotent. */
  protected onClose(): void {
    this.#cancelTimer();
    this.#waiters.rejectAll(new ClosedError('TokenBucket'));
  }

  #refill(): void {
    const now = this.#clock.now();
    const intervals = Math.floor((now - this.#lastRefill) / this.refillIntervalMs);
    if (intervals <= 0) return;
    this.#lastRefill += intervals * this.refillIntervalMs;
    this.#tokens = Math.min(this.capacity, this.#tokens + intervals * this.refillAmount);
    // A full bucket does not bank time: the next refill is a whole interval after it fills.
    if (this.#tokens === this.capacity) this.#lastRefill = now;
  }

  #serve(): void {
    this.#timer = undefined;
    this.#hand();
    this.#armTimer();
  }

  /** Hands free tokens to waiters, first come first served. */
  #hand(): void {
    if (this.closed || this.#waiters.size === 0) return;
    this.#refill();
    while (this.#tokens - this.#reserved >= 1 && this.#waiters.size > 0) {
      this.#tokens--;
      this.#waiters.releaseNext();
    }
  }

  #armTimer(): void {
    if (this.#timer || this.#waiters.size === 0) return;
    const delay = Math.max(0, this.#lastRefill + this.refillIntervalMs - this.#clock.now());
    this.#timer = this.#clock.setTimer(() => this.#serve(), delay);
  }

  #cancelTimer(): void {
    this.#timer?.cancel();
    this.#timer = undefined;
  }
}

const UNLIMITED_RESERVATION: Reservation = Object.freeze({ consume: () => {}, release: () => {} });

/** The limiter for `'unlimited'` / `false`: every take succeeds at once. */
export class UnlimitedRateLimiter extends Closable implements RateLimiter {
  constructor() {
    super('RateLimiter');
  }

  take(signal?: AbortSignal): Promise<void> {
    if (this.closed) return Promise.reject(new ClosedError('RateLimiter'));
    if (signal?.aborted) return Promise.reject(new AbortedError('Waiting for a rate limit token was aborted', { cause: signal.reason }));
    return Promise.resolve();
  }
  tryTake(): boolean {
    if (this.closed) throw new ClosedError('RateLimiter');
    return true;
  }
  reserve(): Reservation | undefined {
    return this.tryTake() ? UNLIMITED_RESERVATION : undefined;
  }
  hasToken(): boolean {
    return this.tryTake();
  }
  protected onClose(): void {
    // Nothing is held: take() and tryTake() refuse from now on.
  }
}

/** Resolves a rate limit option (preset name, bucket, 'unlimited' or false) to a frozen spec or 'unlimited'. */
export function resolveRateLimit(value: RateLimitOption, option = 'rateLimit'): Readonly<RateLimitSpec> | 'unlimited' {
  if (value === false || value === 'unlimited') return 'unlimited';
  if (typeof value === 'string') {
    if (!Object.hasOwn(RATE_LIMIT_PRESETS, value)) {
      throw new InvalidOptionError(option, `unknown preset "${value}"; use one of ${Object.keys(RATE_LIMIT_PRESETS).join(', ')} or { capacity, refillAmount, refillIntervalMs }`);
    }
    return RATE_LIMIT_PRESETS[value];
  }
  return Object.freeze(validateRateLimitSpec(value, option));
}

/** Builds the limiter for a rate limit option. */
export function createRateLimiter(value: RateLimitOption, clock: Clock = systemClock, option = 'rateLimit'): RateLimiter {
  const spec = resolveRateLimit(value, option);
  return spec === 'unlimited' ? new UnlimitedRateLimiter() : new TokenBucket({ ...spec, clock });
}

function validateRateLimitSpec(value: unknown, option: string): RateLimitSpec {
  if (typeof value !== 'object' || value === null) {
    throw new InvalidOptionError(option, 'must be { capacity, refillAmount, refillIntervalMs }, a preset name or false');
  }
  const { capacity, refillAmount, refillIntervalMs } = value as Partial<RateLimitSpec>;
  if (!Number.isInteger(capacity) || (capacity as number) < 1) {
    throw new InvalidOptionError(`${option}.capacity`, 'must be an integer >= 1');
  }
  if (!Number.isInteger(refillAmount) || (refillAmount as number) < 1) {
    throw new InvalidOptionError(`${option}.refillAmount`, 'must be an integer >= 1');
  }
  if (typeof refillIntervalMs !== 'number' || !Number.isFinite(refillIntervalMs) || refillIntervalMs <= 0) {
    throw new InvalidOptionError(`${option}.refillIntervalMs`, 'must be a positive number of milliseconds');
  }
  return { capacity: capacity as number, refillAmount: refillAmount as number, refillIntervalMs };
}
