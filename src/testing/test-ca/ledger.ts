/**
 * What the test CA remembers: which URL is which endpoint (learned from the
 * answers it relays, so no Pebble path is hard-coded), request counts,
 * pending faults, accounts, orders with their profile and `replaces`, and the
 * certificates it issued with their ARI windows and revocations.
 */
import type { KeyObject } from 'node:crypto';
import { InvalidOptionError } from '../../errors.js';
import { certIdOfInput } from './pki.js';
import type { RenewalWindow, TestCaCertificate, TestCaEndpoint, TestCaFault } from './types.js';

const ACME_ERROR = 'urn:ietf:params:acme:error:';
const HOUR_MS = 3_600_000;
/** Default ARI window, as fractions of the lifetime: renew from 2/3 of it on, as Let's Encrypt suggests. */
const WINDOW_START = 2 / 3;
const WINDOW_END = 3 / 4;

export interface OrderRecord {
  path: string;
  accountPath: string | undefined;
  profile: string;
  replaces: string | undefined;
  identifiers: string[];
}

export interface CertificateRecord extends TestCaCertificate {
  orderPath: string;
  accountPath: string | undefined;
  /** What the client downloads: the re-issued leaf, then Pebble's intermediate(s). */
  chainPem: string;
  /** Path of the finalized order that replaced it (RFC 9773 §5), set before its successor is downloaded. */
  replacedByOrder?: string;
}

export interface PendingFault {
  status: number;
  type: string;
  detail: string;
  retryAfter: string | undefined;
  remaining: number;
}

export class Ledger {
  readonly #endpoints = new Map<string, TestCaEndpoint>();
  readonly #counts = new Map<TestCaEndpoint, number>();
  readonly #faults = new Map<TestCaEndpoint, PendingFault[]>();
  readonly #retryAfter = new Map<TestCaEndpoint, number>();
  readonly accounts = new Map<string, KeyObject>();
  readonly orders = new Map<string, OrderRecord>();
  /** finalize and certificate paths -> their order. */
  readonly #orderOf = new Map<string, OrderRecord>();
  readonly #certificates = new Map<string, CertificateRecord>();
  /** Bumped on every revocation, so a cached CRL knows it is stale. */
  revision = 0;
  /** Serve the CRL with a broken signature (a client must reject it). */
  crlTampered = false;

  // --- endpoints, counts, faults, Retry-After

  learn(url: unknown, endpoint: TestCaEndpoint, order?: OrderRecord): void {
    if (typeof url !== 'string' || !URL.canParse(url)) return;
    const path = new URL(url).pathname;
    this.#endpoints.set(path, endpoint);
    if (order) this.#orderOf.set(path, order);
  }

  endpointOf(path: string): TestCaEndpoint {
    return this.#endpoints.get(path) ?? 'other';
  }

  orderAt(path: string): OrderRecord | undefined {
    return this.orders.get(path) ?? this.#orderOf.get(path);
  }

  count(endpoint: TestCaEndpoint): void {
    this.#counts.set(endpoint, (this.#counts.get(endpoint) ?? 0) + 1);
  }

  requests(endpoint?: TestCaEndpoint): number {
    if (endpoint !== undefined) return this.#counts.get(endpoint) ?? 0;
    let total = 0;
    for (const n of this.#counts.values()) total += n;
    return total;
  }

  addFault(fault: TestCaFault): void {
    if (typeof fault !== 'object' || fault === null || typeof fault.endpoint !== 'string') {
      throw new InvalidOptionError('fault', 'must be { endpoint, status, retryAfter?, type?, detail?, times? }');
    }
    if (!Number.isInteger(fault.status) || fault.status < 400 || fault.status > 599) throw new InvalidOptionError('fault.status', 'must be an HTTP error status (400-599)');
    const times = fault.times ?? 1;
    if (!(times === Infinity || (Number.isInteger(times) && times > 0))) throw new InvalidOptionError('fault.times', 'must be a positive integer or Infinity');
    const type = fault.type ?? (fault.status === 429 ? 'rateLimited' : 'serverInternal');
    const list = this.#faults.get(fault.endpoint) ?? [];
    list.push({
      status: fault.status,
      type: type.includes(':') ? type : `${ACME_ERROR}${type}`,
      detail: fault.detail ?? `fault injected by the test CA (${fault.endpoint})`,
      retryAfter: retryAfterHeader(fault.retryAfter),
      remaining: times,
    });
    this.#faults.set(fault.endpoint, list);
  }

  /** The fault that answers this request instead of Pebble, if one is pending. */
  takeFault(endpoint: TestCaEndpoint): PendingFault | undefined {
    const list = this.#faults.get(endpoint);
    const fault = list?.[0];
    if (!list || !fault) return undefined;
    if (--fault.remaining <= 0) list.shift();
    return fault;
  }

  clearFaults(): void {
    this.#faults.clear();
  }

  setRetryAfter(endpoint: TestCaEndpoint, seconds: number | undefined): void {
    if (seconds === undefined) {
      this.#retryAfter.delete(endpoint);
      return;
    }
    if (!Number.isInteger(seconds) || seconds < 0) throw new InvalidOptionError('retryAfter', 'must be a non-negative integer number of seconds');
    this.#retryAfter.set(endpoint, seconds);
  }

  retryAfterOf(endpoint: TestCaEndpoint): number | undefined {
    return this.#retryAfter.get(endpoint);
  }

  // --- certificates, ARI, revocation

  addCertificate(record: CertificateRecord): void {
    this.#certificates.set(record.certId, record);
  }

  certificates(): CertificateRecord[] {
    return [...this.#certificates.values()];
  }

  find(certId: string): CertificateRecord | undefined {
    return this.#certificates.get(certId);
  }

  /** By PEM (leaf first) or certID; throws when the test CA did not issue it. */
  get(certificate: string): CertificateRecord {
    let certId: string;
    try {
      certId = certIdOfInput(certificate);
    } catch (error) {
      throw new InvalidOptionError('certificate', 'must be a PEM certificate or an RFC 9773 certID', { cause: error });
    }
    const record = this.#certificates.get(certId);
    if (!record) throw new InvalidOptionError('certificate', `${certId} was not issued by this test CA`);
    return record;
  }

  setWindow(record: CertificateRecord, window: RenewalWindow): void {
    const start = toDate(window.start, 'window.start');
    const end = toDate(window.end, 'window.end');
    if (end.getTime() <= start.getTime()) throw new InvalidOptionError('window.end', 'must be after window.start');
    if (window.explanationUrl !== undefined && (typeof window.explanationUrl !== 'string' || !URL.canParse(window.explanationUrl))) {
      throw new InvalidOptionError('window.explanationUrl', 'must be a URL');
    }
    record.renewalWindow = { start, end, ...(window.explanationUrl !== undefined ? { explanationUrl: window.explanationUrl } : {}) };
  }

  /** Every window in the past: what a CA does before a mass revocation (Let's Encrypt's drill of 2026-03-19). */
  drill(now: number, explanationUrl: string | undefined): void {
    for (const record of this.#certificates.values()) this.#moveIntoPast(record, now, explanationUrl);
  }

  revoke(record: CertificateRecord, at: number, reason: number): void {
    record.revoked = { at: new Date(at), reason };
    // A CA that revokes also tells ARI clients to renew at once.
    if (record.renewalWindow.end.getTime() > at) this.#moveIntoPast(record, at, record.renewalWindow.explanationUrl);
    this.revision++;
  }

  #moveIntoPast(record: CertificateRecord, now: number, explanationUrl: string | undefined): void {
    this.setWindow(record, { start: now - 2 * HOUR_MS, end: now - HOUR_MS, ...(explanationUrl !== undefined ? { explanationUrl } : {}) });
  }
}

export function defaultWindow(notBefore: Date, notAfter: Date): { start: Date; end: Date } {
  const from = notBefore.getTime();
  const lifetime = notAfter.getTime() - from;
  return { start: new Date(from + Math.round(lifetime * WINDOW_START)), end: new Date(from + Math.round(lifetime * WINDOW_END)) };
}

function toDate(value: unknown, option: string): Date {
  const date = value instanceof Date ? new Date(value.getTime()) : typeof value === 'number' ? new Date(value) : undefined;
  if (!date || Number.isNaN(date.getTime())) throw new InvalidOptionError(option, 'must be a Date or epoch milliseconds');
  return date;
}

function retryAfterHeader(value: number | Date | undefined): string | undefined {
  if (value === undefined) return undefined;
  if (value instanceof Date) return value.toUTCString();
  if (!Number.isInteger(value) || value < 0) throw new InvalidOptionError('fault.retryAfter', 'must be whole seconds or a Date');
  return String(value);
}
