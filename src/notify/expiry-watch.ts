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
      if (!cert.notBefore || !cert.notAfter || cert.serialNumber === undefined || this.#announced.has(cert.serialNumber)) continue;
      const lifetime = cert.notAfter.getTime() - cert.notBefore.getTime();
      if (lifetime <= 0) continue;
      const crossAt = cert.notAfter.getTime() - lifetime * this.#opts.ratio;
      if (now < crossAt) {
        next = Math.min(next, crossAt);
        continue;
      }
      this.#announced.add(cert.serialNumber);
      this.#opts.emit({ names: [...cert.names], notAfter: cert.notAfter, remainingMs: cert.notAfter.getTime() - now, managed: true, issuer: cert.issuer, serialNumber: cert.serialNumber });
    }
    this.#timer?.cancel();
    this.#timer = Number.isFinite(next) ? this.#opts.clock.setTimer(() => this.check(), Math.max(1, Math.ceil(next - now))) : undefined;
  }

  protected onClose(): void {
    this.#timer?.cancel();
    this.#timer = undefined;
  }
}
