/**
 * Announces managed certificates that are expiring soon (less than `ratio` of
 * their lifetime left, 1/5 by default) as `cert_expiring` events, once per
 * certificate (serial) per process. Unmanaged certificates (files) announce
 * their own expiry (tls/file-reload.ts). A check every hour reads only the
 * keeper's in-memory status: no I/O.
 */
import type { Clock, TimerHandle } from '../clock.js';
import type { CertExpiringEvent } from '../events.js';

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
  intervalMs: number;
  list: () => readonly ExpiringSource[];
  emit: (event: CertExpiringEvent) => void;
}

export class ExpiryWatch {
  readonly #opts: ExpiryWatchOptions;
  readonly #announced = new Set<string>();
  #timer: TimerHandle | undefined;
  #closed = false;

  constructor(options: ExpiryWatchOptions) {
    this.#opts = options;
    this.#arm();
  }

  /** Checks now (also run by the timer). */
  check(): void {
    const now = this.#opts.clock.now();
    for (const cert of this.#opts.list()) {
      if (!cert.notBefore || !cert.notAfter || cert.serialNumber === undefined || this.#announced.has(cert.serialNumber)) continue;
      const lifetime = cert.notAfter.getTime() - cert.notBefore.getTime();
      const remainingMs = cert.notAfter.getTime() - now;
      if (lifetime <= 0 || remainingMs >= lifetime * this.#opts.ratio) continue;
      this.#announced.add(cert.serialNumber);
      this.#opts.emit({ names: [...cert.names], notAfter: cert.notAfter, remainingMs, managed: true, issuer: cert.issuer, serialNumber: cert.serialNumber });
    }
  }

  close(): void {
    this.#closed = true;
    this.#timer?.cancel();
    this.#timer = undefined;
  }

  #arm(): void {
    if (this.#closed) return;
    this.#timer = this.#opts.clock.setTimer(() => {
      this.check();
      this.#arm();
    }, this.#opts.intervalMs);
  }
}
