/**
 * The status of every certificate a keeper serves, as plain data: the status
 * page (JSON and HTML) and `certkeeper list/status --json` print the same
 * fields. No key material, no storage paths beyond a loaded file's name.
 */
import { X509Certificate } from 'node:crypto';
import type { CertificateMaterial } from '../tls/certificate-material.js';

export type CertificateSource = 'managed' | 'on-demand' | 'files' | 'memory';

export interface StatusEntry {
  names: string[];
  source: CertificateSource;
  /** `valid`, `obtaining`, `failed`, or `expired`. */
  state: 'valid' | 'obtaining' | 'failed' | 'expired';
  /** The issuer key (managed) or the issuing CA's subject (files). */
  issuer: string | undefined;
  /** ACME profile the certificate was issued under (`classic`, `tlsserver`, `shortlived`...), when known. */
  profile: string | undefined;
  notBefore: string | undefined;
  notAfter: string | undefined;
  serialNumber: string | undefined;
  /** Seconds until not-after (negative once expired), at `generatedAt`. */
  expiresInSeconds: number | undefined;
  /** Fraction of the lifetime left, 0..1. */
  lifetimeLeft: number | undefined;
  /** When the keeper will next try (renewal or retry); undefined for certificates it does not renew. */
  nextRenewalAt: string | undefined;
  /** Why then: `lifetime` rule, CA's `ari` window, `emergency` (1/20 left), `retry` after failures, or `not-renewed` (loaded from files or memory). */
  nextRenewalReason: 'lifetime' | 'ari' | 'emergency' | 'retry' | 'not-renewed' | undefined;
  ariWindow: { start: string; end: string } | undefined;
  failures: number;
  lastError: { code: string | undefined; message: string; at: string } | undefined;
  /** For certificates loaded from files: the certificate file. */
  certFile: string | undefined;
}

export interface StatusReport {
  generatedAt: string;
  certificates: StatusEntry[];
}

/** What the manager's list() returns, as far as the report needs it (the manager's CertificateStatus extends it). */
export interface ManagedStatusLike {
  names: string[];
  /** Issuer key of the certificate being served. */
  issuer: string | undefined;
  /** ACME profile of the certificate being served, when the CA or the order named one. */
  profile?: string | undefined;
  notBefore: Date | undefined;
  notAfter: Date | undefined;
  serialNumber: string | undefined;
  /** When the next renewal (or retry) is scheduled. */
  nextRenewalAt: Date | undefined;
  /** `valid`: a certificate is served; `obtaining`: none yet; `failed`: none, and the last attempt failed. */
  state: 'valid' | 'obtaining' | 'failed';
  failures: number;
  lastError: { code: string | undefined; message: string; at: Date } | undefined;
  /** `managed`: named in manageSync/manageAsync; `on-demand`: registered during a handshake. */
  source: 'managed' | 'on-demand';
  /** What decided the renewal time: the lifetime rule, the ARI window, or the 1/20 emergency point. */
  renewalReason: 'lifetime' | 'ari' | 'emergency' | undefined;
  /** The CA's suggested renewal window (RFC 9773), when it gave one. */
  ariWindow: { start: Date; end: Date } | undefined;
}

export interface UnmanagedStatusLike {
  material: CertificateMaterial;
  certFile: string | undefined;
  lastReloadFailed: boolean;
}

const iso = (date: Date | undefined): string | undefined => (date ? date.toISOString() : undefined);

function lifetimeFacts(notBefore: Date | undefined, notAfter: Date | undefined, now: number): { expiresInSeconds: number | undefined; lifetimeLeft: number | undefined } {
  if (!notBefore || !notAfter) return { expiresInSeconds: undefined, lifetimeLeft: undefined };
  const lifetime = notAfter.getTime() - notBefore.getTime();
  const left = notAfter.getTime() - now;
  return { expiresInSeconds: Math.round(left / 1000), lifetimeLeft: lifetime > 0 ? Math.min(1, Math.max(0, left / lifetime)) : undefined };
}

/** Subject of the certificate's issuer, one line (CN when present). */
function issuerOf(certPem: string): string | undefined {
  try {
    const issuer = new X509Certificate(certPem).issuer;
    const cn = /(?:^|\n)CN=([^\n]*)/.exec(issuer)?.[1];
    // node:crypto escapes DN specials (RFC 2253: \< \> \, ...); the page escapes for HTML itself.
    return cn !== undefined ? cn.replace(/\\([,+"\\<>;=#])/g, '$1') : issuer.replace(/\n/g, ', ');
  } catch {
    return undefined;
  }
}

export function buildStatusReport(managed: readonly ManagedStatusLike[], unmanaged: readonly UnmanagedStatusLike[], now: number): StatusReport {
  const entries: StatusEntry[] = [];
  for (const c of managed) {
    const expired = c.notAfter !== undefined && c.notAfter.getTime() <= now;
    entries.push({
      names: [...c.names],
      source: c.source,
      state: expired ? 'expired' : c.state,
      issuer: c.issuer,
      profile: c.profile,
      notBefore: iso(c.notBefore),
      notAfter: iso(c.notAfter),
      serialNumber: c.serialNumber,
      ...lifetimeFacts(c.notBefore, c.notAfter, now),
      nextRenewalAt: iso(c.nextRenewalAt),
      nextRenewalReason: c.failures > 0 ? 'retry' : (c.renewalReason ?? (c.nextRenewalAt ? 'retry' : undefined)),
      ariWindow: c.ariWindow ? { start: c.ariWindow.start.toISOString(), end: c.ariWindow.end.toISOString() } : undefined,
      failures: c.failures,
      lastError: c.lastError ? { code: c.lastError.code, message: c.lastError.message, at: c.lastError.at.toISOString() } : undefined,
      certFile: undefined,
    });
  }
  for (const u of unmanaged) {
    const m = u.material;
    entries.push({
      names: [...m.names],
      source: u.certFile !== undefined ? 'files' : 'memory',
      state: m.notAfter.getTime() <= now ? 'expired' : 'valid',
      issuer: issuerOf(m.certPem),
      profile: undefined,
      notBefore: m.notBefore.toISOString(),
      notAfter: m.notAfter.toISOString(),
      serialNumber: m.serialNumber,
      ...lifetimeFacts(m.notBefore, m.notAfter, now),
      nextRenewalAt: undefined,
      nextRenewalReason: 'not-renewed',
      ariWindow: undefined,
      failures: 0,
      lastError: u.lastReloadFailed ? { code: undefined, message: 'the last reload of the files was refused; the previous certificate is still served', at: new Date(now).toISOString() } : undefined,
      certFile: u.certFile,
    });
  }
  // Most urgent first: nothing served yet, then soonest expiry.
  entries.sort((a, b) => (a.notAfter ?? '').localeCompare(b.notAfter ?? '') || (a.names[0] ?? '').localeCompare(b.names[0] ?? ''));
  return { generatedAt: new Date(now).toISOString(), certificates: entries };
}
