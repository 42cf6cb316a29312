/**
 * Nobody renews an unmanaged certificate, so its approaching expiry is
 * announced (`cert_expiring`) on timers, one per threshold, not by polling.
 */
import type { Clock, TimerHandle } from '../clock.js';
import type { TypedEmitter } from '../events.js';
import type { Logger } from '../logger.js';
import type { CertificateMaterial } from './certificate-material.js';

const DAY_MS = 86_400_000;
/** Remaining lifetimes at which an unmanaged certificate's expiry is announced, largest first. */
export const UNMANAGED_EXPIRY_WARNINGS_MS = Object.freeze([7 * DAY_MS, DAY_MS]);

export class ExpiryWarnings {
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #events: Pick<TypedEmitter, 'emit'>;
  #timer: TimerHandle | undefined;
  /** Smallest threshold already announced for the current certificate. */
  #warnedBelow = Number.POSITIVE_INFINITY;
  #stopped = false;

  constructor(options: { clock: Clock; logger: Logger; events: Pick<TypedEmitter, 'emit'> }) {
    this.#clock = options.clock;
    this.#log = options.logger;
    this.#events = options.events;
  }

  /** A certificate was put in service: its thresholds are announced afresh. */
  start(material: CertificateMaterial, certFile: string | undefined): void {
    this.#warnedBelow = Number.POSITIVE_INFINITY;
    this.#schedule(material, certFile);
  }

  /** Cancels the timer for good. */
  stop(): void {
    this.#stopped = true;
    this.#timer?.cancel();
    this.#timer = undefined;
  }

  /**
   * Announces the tightest threshold already crossed (once per certificate),
   * then sleeps until the next one. A timer that fires early (the system
   * clock caps long delays) just re-evaluates.
   */
  #schedule(material: CertificateMaterial, certFile: string | undefined): void {
    this.#timer?.cancel();
    this.#timer = undefined;
    if (this.#stopped) return;
    const clock = this.#clock;
    const remaining = material.notAfter.getTime() - clock.now();
    const crossed = UNMANAGED_EXPIRY_WARNINGS_MS.filter((threshold) => remaining < threshold);
    const tightest = crossed[crossed.length - 1];
    if (tightest !== undefined && tightest < this.#warnedBelow && remaining > 0) {
      this.#warnedBelow = tightest;
      const details = { names: [...material.names], notAfter: material.notAfter, remainingMs: remaining, managed: false };
      this.#log.warn(
        { names: details.names, notAfter: material.notAfter.toISOString(), remainingMs: remaining, certFile },
        'unmanaged certificate expires soon and is not renewed by certkeeper; replace it',
      );
      this.#events.emit('cert_expiring', details);
    }
    const next = UNMANAGED_EXPIRY_WARNINGS_MS.find((threshold) => remaining >= threshold);
    if (remaining <= 0) {
      this.#log.error({ names: material.names, notAfter: material.notAfter.toISOString(), certFile }, 'unmanaged certificate has expired');
      return;
    }
    // Next threshold, or the expiry itself once every threshold is behind.
    const wait = next !== undefined ? remaining - next : remaining;
    this.#timer = clock.setTimer(() => this.#schedule(material, certFile), Math.max(1, wait));
  }
}
