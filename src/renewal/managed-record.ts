/**
 * What certkeeper knows of one managed certificate: the names it covers, how
 * to obtain it, what is served now, and how its last attempts went. The
 * manager's registry holds these records; the scheduler and the failure
 * policy read and update them, which is why the type sits down here.
 */
import { isIP } from 'node:net';
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

/**
 * A fresh record: nothing served, nothing failed yet. Its identifiers are rebuilt from its normalised names when
 * asked for (only an order needs them), so a million listed names do not each keep an array and objects for them.
 */
export function newRecord(identifiers: readonly Identifier[], settings: ResolvedSettings): ManagedRecord {
  return new Record(identifiers.map((i) => i.value), settings);
}

class Record implements ManagedRecord {
  readonly certName: string;
  readonly names: string[];
  settings: ResolvedSettings;
  issuerKey: string | undefined = undefined;
  notBefore: number | undefined = undefined;
  notAfter: number | undefined = undefined;
  serialNumber: string | undefined = undefined;
  certPem: string | undefined = undefined;
  materialId: string | undefined = undefined;
  ariSelectedTime: number | undefined = undefined;
  ariWindow: AriWindowMs | undefined = undefined;
  ariFor: string | undefined = undefined;
  backoff: BackoffState | undefined = undefined;
  finalError = false;
  obtainedAt: number | undefined = undefined;

  constructor(names: string[], settings: ResolvedSettings) {
    this.certName = names[0] as string;
    this.names = names;
    this.settings = settings;
  }

  get identifiers(): Identifier[] {
    return this.names.map(identifierOf);
  }
}

/** The identifier of a normalised name (what parseIdentifier returned for it). */
function identifierOf(value: string): Identifier {
  return { type: isIP(value) !== 0 ? 'ip' : 'dns', value, wildcard: value.startsWith('*.') };
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

/**
 * The issuer of the served certificate, when it can tell its renewal window (RFC 9773). A listed name
 * whose sidecar was read (its serial is known) counts too: its PEM is read from storage when asked for.
 */
export function ariIssuerOf(record: ManagedRecord): Issuer | undefined {
  const issuer = record.settings.issuers.find((i) => i.key === record.issuerKey);
  return issuer?.renewalInfo && (record.certPem !== undefined || record.serialNumber !== undefined) ? issuer : undefined;
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
