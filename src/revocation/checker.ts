/**
 * Periodic revocation checks of served managed certificates, off the
 * handshake path: the CRL each one names (one fetch per CRL, kept until its
 * nextUpdate) and, where it names a responder, OCSP (whose good answers are
 * stapled). Requests to one CA endpoint (scheme, host and port) go one at a
 * time. A certificate that names neither gets no request and no log line.
 * A revocation is handed to `onRevoked`; the caller replaces the certificate.
 * A failed check never touches what is served: it is logged and retried.
 */
import type { X509Certificate } from 'node:crypto';
import type { Clock } from '../clock.js';
import type { ResolvedRevocationCheck } from '../config/revocation.js';
import { Closable } from '../lifecycle.js';
import type { Logger } from '../logger.js';
import { DueQueue } from '../renewal/due-queue.js';
import type { ManagedRecord } from '../renewal/managed-record.js';
import { EventLoopTurns } from '../renewal/pacer.js';
import { revocationTarget, type RevocationTarget } from './certificate-info.js';
import { CrlCache } from './crl.js';
import { RevocationDataError, RevocationFetchError, type RevocationSource } from './errors.js';
import { OcspCache } from './ocsp.js';
import { StapleStore } from './stapling.js';

/** A check is not repeated sooner than this, whatever a cached answer's nextUpdate says. */
export const MIN_RECHECK_MS = 60_000;
const MAX_OCSP_BYTES = 64 * 1024;
const MAX_CRLS = 256;

export interface Revocation {
  serialNumber: string;
  revokedAt: number;
  reason: number;
  source: RevocationSource;
}

export interface RevocationCheckerOptions {
  config: ResolvedRevocationCheck;
  clock: Clock;
  logger: Logger;
  /** The record managed under a certificate name now (undefined once unmanaged). */
  lookup(certName: string): ManagedRecord | undefined;
  /**
   * The served chain of a record that no longer holds it in memory (its context was evicted): read from storage,
   * undefined when it is gone or another certificate is stored now. Without it such a record is not checked.
   */
  certificatePem?(record: ManagedRecord): Promise<string | undefined>;
  /** The served certificate is revoked (called once per serial). */
  onRevoked(record: ManagedRecord, revocation: Revocation): void;
  /** Certificates whose good OCSP answers are kept for stapling at most (default 10,000). */
  maxStaples?: number;
  /** Keeps checks in flight visible to the owner's close(). */
  track<T>(work: Promise<T>): Promise<T>;
}

export class RevocationChecker extends Closable {
  readonly #o: RevocationCheckerOptions;
  readonly #queue: DueQueue<string>;
  readonly #crls: CrlCache;
  readonly #ocsp: OcspCache;
  readonly staples: StapleStore;
  /**
   * Parsed once per served serial, kept only while the record holds its chain (its context is cached) and only when
   * the certificate names an endpoint: a fleet of evicted or endpoint-less certificates keeps nothing here.
   */
  readonly #targets = new Map<string, RevocationTarget>();
  /** Facts read from a chain its obtainer had parsed already: for the record's next check only, then kept or dropped as above. */
  readonly #primed = new Map<string, { serialNumber: string; target: RevocationTarget | undefined }>();
  /** The tail of each endpoint's queue of requests. */
  readonly #endpoints = new Map<string, Promise<unknown>>();
  /** A CRL or responder URL that failed is left alone for one interval: its error stands for every certificate naming it. */
  readonly #down = new Map<string, { until: number; error: unknown }>();
  /** Errors already logged (a standing endpoint failure is logged once, not once per certificate). */
  readonly #logged = new WeakSet<object>();
  readonly #abort = new AbortController();
  /** Reading a certificate's extensions takes one event-loop iteration per certificate, so a start with thousands leaves handshakes answered. */
  readonly #turns = new EventLoopTurns();

  constructor(options: RevocationCheckerOptions) {
    super('RevocationChecker');
    this.#o = options;
    const { config, clock } = options;
    const fetch = { timeoutMs: config.timeoutMs, retries: config.retries, retryDelayMs: config.retryDelayMs, clock };
    this.#crls = new CrlCache({ fetch: { ...fetch, maxBytes: config.maxCrlBytes }, fallbackLifetimeMs: config.intervalMs, maxEntries: MAX_CRLS, clock });
    this.#ocsp = new OcspCache({ fetch: { ...fetch, maxBytes: MAX_OCSP_BYTES }, fallbackLifetimeMs: config.intervalMs, maxEntries: options.maxStaples ?? 10_000, clock });
    this.staples = new StapleStore(clock, options.maxStaples ?? 10_000);
    this.#queue = new DueQueue<string>({
      clock,
      onDue: (certName) => {
        const record = options.lookup(certName);
        if (record && !this.closed) void options.track(this.#check(record));
      },
      onError: (error, certName) => options.logger.error({ err: error, certName }, 'revocation check failed to start'),
    });
  }

  /** CRLs fetched so far. */
  get crlFetches(): number {
    return this.#crls.fetches;
  }

  /** A certificate is served (newly obtained, adopted or loaded): check it on the next tick. */
  watch(record: ManagedRecord): void {
    if (this.closed || record.serialNumber === undefined) return;
    this.#queue.schedule(record.certName, this.#o.clock.now());
  }

  /** The record's served chain, parsed by whoever obtained it: its next check reads these facts instead of parsing it. */
  prime(record: ManagedRecord, certificates: readonly X509Certificate[]): void {
    if (this.closed || record.certPem === undefined) return;
    let target: RevocationTarget | undefined;
    try {
      target = revocationTarget(record.certPem, certificates);
    } catch {
      return;
    }
    this.#primed.set(record.certName, { serialNumber: serialOf(record), target });
  }

  /** The record's context left the cache: its parsed target goes too; its next check reads the chain again. */
  release(certName: string): void {
    this.#targets.delete(certName);
    this.#primed.delete(certName);
  }

  /** Parsed targets held now (for tests and metrics). */
  get targetsHeld(): number {
    return this.#targets.size;
  }

  forget(certName: string): void {
    this.#queue.unschedule(certName);
    this.#targets.delete(certName);
    this.#primed.delete(certName);
  }

  protected async onClose(): Promise<void> {
    this.#abort.abort();
    await this.#queue.close();
  }

  async #check(record: ManagedRecord): Promise<void> {
    await this.#turns.turn();
    if (this.closed) return;
    const target = await this.#targetOf(record);
    if (this.closed) return;
    // Nothing named, nothing to do: no request, no log line, no further check of this certificate.
    if (!target || (target.ocspUrls.length === 0 && target.crlUrls.length === 0)) return;
    const { config, clock, logger } = this.#o;
    let next = clock.now() + config.intervalMs;
    const stillServed = (): boolean => !this.closed && this.#o.lookup(record.certName) === record && record.serialNumber !== undefined && target.serialNumber === serialOf(record);
    const revoked = (revocation: Omit<Revocation, 'serialNumber'>): void => {
      if (stillServed()) this.#o.onRevoked(record, { ...revocation, serialNumber: record.serialNumber as string });
    };
    const signal = this.#abort.signal;

    const ocspUrl = config.ocsp ? target.ocspUrls[0] : undefined;
    if (ocspUrl !== undefined) {
      try {
        const answer = await this.#paced(ocspUrl, () => this.#ocsp.get(target, ocspUrl, signal));
        if (answer.status === 'revoked') revoked({ revokedAt: answer.revokedAt ?? clock.now(), reason: answer.reason ?? 0, source: 'ocsp' });
        if (answer.status === 'good' && config.stapling) this.staples.set(target.fingerprint, answer.der, answer.nextUpdate ?? clock.now() + config.intervalMs);
        else this.staples.delete(target.fingerprint);
        if (answer.status === 'unknown') logger.debug({ names: record.names }, 'the OCSP responder does not know the certificate');
        next = Math.min(next, this.#ocsp.refreshAt(target) ?? next);
      } catch (error) {
        this.#report(error, record, 'ocsp');
      }
    }
    const crlUrl = config.crl ? target.crlUrls[0] : undefined;
    if (crlUrl !== undefined && stillServed()) {
      try {
        const crl = await this.#paced(crlUrl, () => this.#crls.get(crlUrl, target.issuer, signal));
        const entry = crl.revoked.get(target.serialNumber);
        if (entry) revoked({ revokedAt: entry.revokedAt, reason: entry.reason, source: 'crl' });
        if (crl.nextUpdate !== undefined) next = Math.min(next, crl.nextUpdate);
      } catch (error) {
        this.#report(error, record, 'crl');
      }
    }
    // A revoked certificate is being replaced; its successor is watched when it is served.
    if (stillServed() && record.revoked?.serialNumber !== record.serialNumber) this.#queue.schedule(record.certName, Math.max(next, clock.now() + MIN_RECHECK_MS));
  }

  async #targetOf(record: ManagedRecord): Promise<RevocationTarget | undefined> {
    const serialNumber = serialOf(record);
    const known = this.#targets.get(record.certName);
    if (known && known.serialNumber === serialNumber) return known;
    this.#targets.delete(record.certName);
    const primed = this.#primed.get(record.certName);
    this.#primed.delete(record.certName);
    const held = record.certPem;
    let target: RevocationTarget | undefined;
    if (primed !== undefined && primed.serialNumber === serialNumber && held !== undefined) target = primed.target;
    else {
      const pem = held ?? (await this.#o.certificatePem?.(record).catch(() => undefined));
      if (pem === undefined) return undefined;
      try {
        target = revocationTarget(pem);
      } catch {
        return undefined;
      }
    }
    // The chain read must still be the record's certificate (a renewal may have swapped it meanwhile).
    if (target === undefined || target.serialNumber !== serialOf(record)) return undefined;
    const named = target.ocspUrls.length > 0 || target.crlUrls.length > 0;
    if (named && held !== undefined && record.certPem === held) this.#targets.set(record.certName, target);
    return target;
  }

  #report(error: unknown, record: ManagedRecord, source: RevocationSource): void {
    if (this.#abort.signal.aborted || typeof error !== 'object' || error === null || this.#logged.has(error)) return;
    this.#logged.add(error);
    this.#o.logger.warn({ err: error, names: record.names, source }, 'revocation check failed; the certificate stays served');
  }

  /** One request at a time per CA endpoint, so a fleet of certificates does not burst at one responder. */
  #paced<T>(url: string, request: () => Promise<T>): Promise<T> {
    const endpoint = new URL(url).origin;
    const previous = this.#endpoints.get(endpoint) ?? Promise.resolve();
    const guarded = (): Promise<T> => {
      const down = this.#down.get(url);
      if (down && this.#o.clock.now() < down.until) return Promise.reject(down.error);
      this.#down.delete(url);
      return request().catch((error: unknown) => {
        // Unreachable, or a CRL (shared by all its certificates) that cannot be trusted; an OCSP answer is per certificate.
        const shared = error instanceof RevocationFetchError || (error instanceof RevocationDataError && error.source === 'crl');
        if (shared && !this.#abort.signal.aborted) this.#down.set(url, { until: this.#o.clock.now() + this.#o.config.intervalMs, error });
        throw error;
      });
    };
    const run = previous.then(guarded, guarded);
    const tail = run.catch(() => undefined);
    this.#endpoints.set(endpoint, tail);
    void tail.then(() => {
      if (this.#endpoints.get(endpoint) === tail) this.#endpoints.delete(endpoint);
    });
    return run;
  }
}

/** The record's serial as the revocation data writes it: lower-case hex without leading zeros. */
function serialOf(record: ManagedRecord): string {
  return (record.serialNumber ?? '').toLowerCase().replace(/^0+(?=.)/, '');
}
