/**
 * Announces managed certificates that are expiring soon (less than `ratio` of
 * their lifetime left, 1/5 by default) as `cert_expiring` events, once per
 * certificate (serial) per process. Unmanaged certificates (files) announce
 * their own expiry (tls/expiry-warnings.ts). One timer, set for the next
 * crossing, reads only the keeper's in-memory status: no I/O.
 */
import type { Clock, TimerHandle } from '../clock.js';
import type { CertExpiringEvent } from '../events.js';
import { Closable } from '../lifecycle.js';

export interface ExpiringSource {
  names: string[];
  issuer: string | undefined;
  notBefore: Date | undefined;
  notAfter: Date | undefined;
  serialNumber: string | undefined;
}

export interface ExpiryWatchOptions {
  clock: Clock;
  ratio: number;
  list: () => readonly ExpiringSource[];
  emit: (event: CertExpiringEvent) => void;
}

export class ExpiryWatch extends Closable {
  readonly #opts: ExpiryWatchOptions;
  readonly #announced = new Set<string>();
  #timer: TimerHandle | undefined;
  /** When the timer fires (infinity: no timer). */
  #nextAt = Number.POSITIVE_INFINITY;

  constructor(options: ExpiryWatchOptions) {
    super('ExpiryWatch');
    this.#opts = options;
  }

  /**
   * Announces what has crossed the threshold, then sleeps until the next
   * crossing (no periodic wake-ups: a clock jump in a test, or a long idle
   * process, sees one timer). Call again when certificates change.
   */
  check(): void {
    if (this.closed) return;
    const now = this.#opts.clock.now();
    let next = Number.POSITIVE_INFINITY;
    for (const cert of this.#opts.list()) {
      const crossAt = this.#crossing(cert);
      if (crossAt === undefined) continue;
      if (now < crossAt) next = Math.min(next, crossAt);
      else this.#announce(cert, now);
    }
    this.#plan(next, now);
  }

  /**
   * One certificate was loaded or obtained: O(1), no scan of every certificate
   * (a lazily loaded name must not cost a walk over 100,000 others).
   */
  note(cert: ExpiringSource): void {
    if (this.closed) return;
    const crossAt = this.#crossing(cert);
    if (crossAt === undefined) return;
    const now = this.#opts.clock.now();
    if (now >= crossAt) this.#announce(cert, now);
    else if (crossAt < this.#nextAt) this.#plan(crossAt, now);
  }

  /** When `cert` crosses the threshold; undefined when unknown or already announced. */
  #crossing(cert: ExpiringSource): number | undefined {
    if (!cert.notBefore || !cert.notAfter || cert.serialNumber === undefined || this.#announced.has(cert.serialNumber)) return undefined;
    const lifetime = cert.notAfter.getTime() - cert.notBefore.getTime();
    if (lifetime <= 0) return undefined;
    return cert.notAfter.getTime() - lifetime * this.#opts.ratio;
  }

  #announce(cert: ExpiringSource, now: number): void {
    // Only called after #crossing() found both.
    const notAfter = cert.notAfter as Date;
    const serialNumber = cert.serialNumber as string;
    this.#announced.add(serialNumber);
    this.#opts.emit({ names: [...cert.names], notAfter, remainingMs: notAfter.getTime() - now, managed: true, issuer: cert.issuer, serialNumber });
  }

  #plan(next: number, now: number): void {
    this.#timer?.cancel();
    this.#nextAt = next;
    this.#timer = Number.isFinite(next) ? this.#opts.clock.setTimer(() => this.check(), Math.max(1, Math.ceil(next - now))) : undefined;
  }

  protected onClose(): void {
    this.#timer?.cancel();
    this.#timer = undefined;
  }
}
