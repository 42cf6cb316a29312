/** What status(), list() and the status page say about one managed certificate. */
import type { ManagedRecord } from '../renewal/managed-record.js';
import type { RenewalSource } from '../renewal/renewal-policy.js';
import type { RenewalScheduler } from '../renewal/scheduler.js';

export interface CertificateStatus {
  names: string[];
  /** Issuer key of the certificate being served. */
  issuer: string | undefined;
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
  /** When renewal is planned, and what decided it (lifetime rule, ARI window, or the 1/20 emergency point). */
  renewalDueAt: Date | undefined;
  renewalReason: RenewalSource | undefined;
  /** The CA's suggested renewal window (RFC 9773), when it gave one. */
  ariWindow: { start: Date; end: Date } | undefined;
}

export function statusOf(record: ManagedRecord, scheduler: RenewalScheduler): CertificateStatus {
  const nextAt = scheduler.nextAt(record.certName);
  const lastError = record.backoff?.lastError;
  const plan = scheduler.plan(record);
  const date = (ms: number | undefined): Date | undefined => (ms !== undefined ? new Date(ms) : undefined);
  return {
    names: [...record.names],
    issuer: record.issuerKey,
    notBefore: date(record.notBefore),
    notAfter: date(record.notAfter),
    serialNumber: record.serialNumber,
    nextRenewalAt: date(nextAt),
    state: record.serialNumber !== undefined ? 'valid' : record.backoff ? 'failed' : 'obtaining',
    failures: record.backoff?.failures ?? 0,
    lastError: lastError ? { code: lastError.code, message: lastError.message, at: new Date(lastError.at) } : undefined,
    source: record.onDemand === true ? 'on-demand' : 'managed',
    renewalDueAt: date(plan?.dueAt),
    renewalReason: plan?.source,
    ariWindow: record.ariWindow ? { start: new Date(record.ariWindow.windowStart), end: new Date(record.ariWindow.windowEnd) } : undefined,
  };
}
