/**
 * What certkeeper knows of one managed certificate: the names it covers, how
 * to obtain it, what is served now, and how its last attempts went. The
 * manager's registry holds these records; the scheduler and the failure
 * policy read and update them, which is why the type sits down here.
 */
import type { Issuer, KeyType } from '../issuers/types.js';
import type { Identifier } from '../names.js';
import type { BackoffState } from './backoff.js';

export interface ResolvedSettings {
  readonly issuers: readonly Issuer[];
  readonly keyType: KeyType;
  /** ACME profile preference given with the names (wins over the issuers' own); undefined when none was. */
  readonly profile?: readonly string[] | undefined;
}

export interface AriWindowMs {
  windowStart: number;
  windowEnd: number;
  /** The CA's page about this window (RFC 9773 `explanationURL`): logged and reported, never fetched. */
  explanationUrl?: string | undefined;
}

export interface ManagedRecord {
  readonly certName: string;
  readonly names: string[];
  readonly identifiers: Identifier[];
  settings: ResolvedSettings;
  /** What is served (or stored) now. */
  issuerKey: string | undefined;
  notBefore: number | undefined;
  notAfter: number | undefined;
  serialNumber: string | undefined;
  certPem: string | undefined;
  materialId: string | undefined;
  ariSelectedTime: number | undefined;
  ariWindow: AriWindowMs | undefined;
  /**
   * Serial number of the certificate `ariWindow` and `ariSelectedTime` were given for. ARI state belongs to one
   * certificate: once another is served, the old window means nothing (acting on it renews the new one again).
   */
  ariFor: string | undefined;
  backoff: BackoffState | undefined;
  /** An ACME problem that retrying will not fix; no automatic retries until renew(). */
  finalError: boolean;
  /** When this process last obtained the served certificate. */
  obtainedAt: number | undefined;
  /** Registered by an on-demand handshake rather than by manageSync/manageAsync. */
  onDemand?: boolean;
  /** ACME profile of the served certificate, and whether its order asked for it (then a renewal asks again). */
  profile?: string | undefined;
  profileRequested?: boolean | undefined;
  /** The CA revoked the certificate with this serial (seen by the revocation checker): it is replaced at once. */
  revoked?: RevokedState | undefined;
  /** Serial of the first of a run of served certificates that were expired by our clock (see replaceExpiredAtOnce). */
  expiredRunSerial?: string | undefined;
}

export interface RevokedState {
  serialNumber: string;
  revokedAt: number;
  reason: number;
  source: 'crl' | 'ocsp';
}

/** A fresh record: nothing served, nothing failed yet. */
export function newRecord(identifiers: Identifier[], settings: ResolvedSettings): ManagedRecord {
  const names = identifiers.map((i) => i.value);
  return {
    certName: names[0] as string,
    names,
    identifiers,
    settings,
    issuerKey: undefined,
    notBefore: undefined,
    notAfter: undefined,
    serialNumber: undefined,
    certPem: undefined,
    materialId: undefined,
    ariSelectedTime: undefined,
    ariWindow: undefined,
    ariFor: undefined,
    backoff: undefined,
    finalError: false,
    obtainedAt: undefined,
  };
}

/** The ARI window and selected time of the served certificate; undefined when none was given for it. */
export function currentAri(record: ManagedRecord): { window: AriWindowMs; selectedTime: number | undefined } | undefined {
  if (record.ariWindow === undefined || record.ariFor === undefined || record.ariFor !== record.serialNumber) return undefined;
  return { window: record.ariWindow, selectedTime: record.ariSelectedTime };
}

/** Takes ARI state for the certificate with `serial`; undefined `window` forgets it. */
export function setAri(record: ManagedRecord, serial: string | undefined, window: AriWindowMs | undefined, selectedTime: number | undefined): void {
  record.ariFor = window === undefined ? undefined : serial;
  record.ariWindow = window;
  record.ariSelectedTime = window === undefined ? undefined : selectedTime;
}

/** The issuer of the served certificate, when it can tell its renewal window (RFC 9773). */
export function ariIssuerOf(record: ManagedRecord): Issuer | undefined {
  const issuer = record.settings.issuers.find((i) => i.key === record.issuerKey);
  return issuer?.renewalInfo && record.certPem !== undefined ? issuer : undefined;
}

/** The served certificate is known to be revoked: due now, whatever its lifetime or ARI window say. */
export function servesRevoked(record: ManagedRecord): boolean {
  return record.revoked !== undefined && record.revoked.serialNumber === record.serialNumber;
}

/** A certificate is served and still valid: its renewal is background work, nobody is waiting for it. */
export function servesValidCertificate(record: ManagedRecord, now: number): boolean {
  return record.materialId !== undefined && record.notAfter !== undefined && record.notAfter > now;
}

/**
 * Whether the served certificate is expired by our clock and may be replaced now, however young. A certificate
 * that arrives expired because the clock jumped while it was being obtained is replaced at once; if its successor
 * is expired too, the clocks disagree for real and the caller's minimum age applies (no order loop).
 */
export function replaceExpiredAtOnce(record: ManagedRecord, now: number): boolean {
  if (record.notAfter === undefined || record.notAfter > now) {
    record.expiredRunSerial = undefined;
    return false;
  }
  record.expiredRunSerial ??= record.serialNumber;
  return record.expiredRunSerial === record.serialNumber;
}
