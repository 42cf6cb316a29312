/**
 * What every connection to one ACME CA shares within a process: the wait the
 * CA asked for (503, or 429 on an endpoint that is not about one name, with
 * Retry-After). While a wait runs no request goes to that CA for any name or
 * account: a CA in maintenance gets one request, not one per name, and every
 * caller learns the same retry time. The directory document is shared per
 * issuer only (SharedDirectory): a new issuer reads it afresh.
 *
 * Keyed by directory URL per Clock: times are only comparable on one clock
 * (a test's FakeClock and the system clock each get their own state).
 */
import { untilAborted } from '../abort.js';
import type { Clock } from '../clock.js';
import { AbortedError, AcmeProblemError, AcmeRateLimitedError, AcmeUnavailableError, ClosedError } from '../errors.js';
import type { AcmeDirectory } from './directories.js';

/** acme-client refreshes its directory after a day; a long-running keeper does the same. */
export const DIRECTORY_MAX_AGE_MS = 24 * 60 * 60_000;

export class CaGate {
  readonly directoryUrl: string;
  readonly #clock: Clock;
  #until = 0;
  #reason: AcmeProblemError | undefined;
  /** URLs of the directory's accountless resources (newNonce, newAccount), once known. */
  readonly #accountless = new Set<string>();

  constructor(directoryUrl: string, clock: Clock) {
    this.directoryUrl = directoryUrl;
    this.#clock = clock;
  }

  /** Epoch ms until which the CA asked not to be contacted, or undefined when it did not (any more). */
  blockedUntil(): number | undefined {
    return this.#until > this.#clock.now() ? this.#until : undefined;
  }

  /**
   * Records a Retry-After that holds for the whole CA: any 503, and a 429 on
   * the directory, newNonce or newAccount. A 429 on an order is the CA's limit
   * for those names or that account, and stays theirs (the manager backs off per name).
   * Returns true when the wait was recorded.
   */
  observe(error: unknown): boolean {
    if (!(error instanceof AcmeProblemError) || error.retryAfterMs === undefined) return false;
    const status = error.status ?? 0;
    const caWide = status === 503 || (status === 429 && error.url !== undefined && this.#isAccountless(error.url));
    if (!caWide) return false;
    const until = this.#clock.now() + error.retryAfterMs;
    if (until > this.#until) {
      this.#until = until;
      this.#reason = error;
    }
    return true;
  }

  #isAccountless(url: string): boolean {
    return url === this.directoryUrl || this.#accountless.has(url);
  }

  /** Tells the gate which URLs of the directory are not about one name or account. */
  learn(directory: AcmeDirectory): void {
    this.#accountless.add(directory.newNonce);
    this.#accountless.add(directory.newAccount);
  }

  /** The typed error for a caller that may not wait until `blockedUntil()`. */
  error(): AcmeUnavailableError | AcmeRateLimitedError {
    const at = new Date(this.#until).toISOString();
    const reason = this.#reason;
    const message = `The CA at ${this.directoryUrl} asked not to be contacted before ${at}${reason ? ` (${reason.message})` : ''}`;
    return reason?.status === 429
      ? new AcmeRateLimitedError(message, this.#until, { cause: reason })
      : new AcmeUnavailableError(message, this.#until, { cause: reason });
  }
}

/**
 * A directory read once for several connections (one issuer's: the account
 * probe, the signed connection, the ARI probe), and again after a day.
 * Callers arriving while a read runs wait for it instead of sending their own;
 * if it was stopped by its starter's signal, they read again.
 */
export class SharedDirectory {
  /**
   * Replay-Nonces kept from earlier answers, for every connection sharing this directory: a nonce
   * belongs to the server, not to an account (RFC 8555 7.2), so the registration's last answer
   * spares the first order its HEAD newNonce.
   */
  readonly nonces: string[] = [];
  readonly #clock: Clock;
  #directory: { value: AcmeDirectory; at: number } | undefined;
  #inflight: Promise<AcmeDirectory> | undefined;

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  async get(read: (signal: AbortSignal | undefined) => Promise<AcmeDirectory>, signal: AbortSignal | undefined): Promise<AcmeDirectory> {
    for (;;) {
      const cached = this.#directory;
      if (cached && this.#clock.now() - cached.at < DIRECTORY_MAX_AGE_MS) return cached.value;
      let flight = this.#inflight;
      const mine = flight === undefined;
      if (!flight) {
        const started: Promise<AcmeDirectory> = read(signal).then(
          (value) => {
            this.#directory = { value, at: this.#clock.now() };
            return value;
          },
        ).finally(() => {
          if (this.#inflight === started) this.#inflight = undefined;
        });
        flight = started;
        this.#inflight = started;
      }
      try {
        return await untilAborted(flight, signal);
      } catch (error) {
        const stoppedByOther = !mine && !signal?.aborted && (error instanceof AbortedError || error instanceof ClosedError);
        if (!stoppedByOther) throw error;
      }
    }
  }
}

const gates = new WeakMap<Clock, Map<string, CaGate>>();

/** The one gate of `directoryUrl` on `clock`. */
export function caGate(directoryUrl: string, clock: Clock): CaGate {
  let byUrl = gates.get(clock);
  if (!byUrl) {
    byUrl = new Map();
    gates.set(clock, byUrl);
  }
  let gate = byUrl.get(directoryUrl);
  if (!gate) {
    gate = new CaGate(directoryUrl, clock);
    byUrl.set(directoryUrl, gate);
  }
  return gate;
}
