/** What status(), list() and the status page say about one managed certificate. */
import type { ManagedStatusLike } from '../http/status-report.js';
import { currentAri, type ManagedRecord } from '../renewal/managed-record.js';
import type { RenewalSource } from '../renewal/renewal-policy.js';
import type { RenewalScheduler } from '../renewal/scheduler.js';

export interface CertificateStatus extends ManagedStatusLike {
  /** When renewal is planned (see renewalReason for what decided it). */
  renewalDueAt: Date | undefined;
  renewalReason: RenewalSource | undefined;
}

export function statusOf(record: ManagedRecord, scheduler: RenewalScheduler): CertificateStatus {
  const nextAt = scheduler.nextAt(record.certName);
  const lastError = record.backoff?.lastError;
  const plan = scheduler.plan(record);
  const date = (ms: number | undefined): Date | undefined => (ms !== undefined ? new Date(ms) : undefined);
  const ari = currentAri(record)?.window;
  return {
    names: [...record.names],
    issuer: record.issuerKey,
    profile: record.profile,
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
    ariWindow: ari ? { start: new Date(ari.windowStart), end: new Date(ari.windowEnd) } : undefined,
  };
}
