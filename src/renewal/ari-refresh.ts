/**
 * ARI (RFC 9773): asks the CA when it suggests renewing the served
 * certificate, moves the renewal due time into that window, and keeps the
 * chosen time in the certificate's sidecar so a restart and every peer
 * sharing the storage pick the same moment.
 */
import { ariRetryAt, shouldQueryAri } from '../acme/ari.js';
import type { Clock } from '../clock.js';
import type { RenewalInfo } from '../issuers/types.js';
import type { Logger } from '../logger.js';
import { updateCertificateMeta } from '../storage/certificates.js';
import { certificateLockName } from '../storage/layout.js';
import { hasTryLock, type Storage } from '../storage/types.js';
import { ariIssuerOf, type ManagedRecord } from './managed-record.js';
import { planRenewal } from './renewal-policy.js';

export interface AriRefreshDeps {
  clock: Clock;
  renewalWindowRatio: number;
  storage: Storage;
  logger: Logger;
  signal: AbortSignal;
  /** The window changed the due time: queue the renewal again. */
  reschedule(): void;
  /** When to ask the CA again. */
  askAgainAt(at: number): void;
}

/** Fetches ARI for the served certificate, reschedules renewal, persists the window, and schedules the next fetch. */
export async function refreshAri(record: ManagedRecord, deps: AriRefreshDeps): Promise<void> {
  const issuer = ariIssuerOf(record);
  const certPem = record.certPem;
  if (!issuer?.renewalInfo || certPem === undefined || record.notAfter === undefined) return;
  if (!shouldQueryAri({ notAfter: record.notAfter }, deps.clock.now())) return;
  let info: RenewalInfo | undefined;
  try {
    info = await issuer.renewalInfo(certPem, deps.signal);
  } catch (error) {
    deps.logger.debug({ err: error, names: record.names }, 'ARI request failed');
  }
  if (info === undefined) {
    // No usable answer: keep the lifetime rule, ask again later.
    deps.askAgainAt(ariRetryAt(undefined, deps.clock.now()));
    return;
  }
  if (info.explanationUrl) deps.logger.info({ names: record.names, explanationUrl: info.explanationUrl }, 'CA suggests a renewal window');
  const changed = record.ariWindow?.windowStart !== info.windowStart || record.ariWindow?.windowEnd !== info.windowEnd;
  record.ariWindow = { windowStart: info.windowStart, windowEnd: info.windowEnd };
  if (changed) record.ariSelectedTime = undefined;
  const plan = planRenewal({
    notBefore: record.notBefore ?? 0,
    notAfter: record.notAfter,
    ratio: deps.renewalWindowRatio,
    ari: record.ariWindow,
    ariSelectedTime: record.ariSelectedTime,
  });
  record.ariSelectedTime = plan.ariSelectedTime;
  deps.reschedule();
  deps.askAgainAt(info.retryAfter);
  if (record.issuerKey !== undefined && plan.ariSelectedTime !== undefined) await persistAriWindow(record, record.issuerKey, info, plan.ariSelectedTime, deps);
}

/**
 * Written only under the certificate lock, and only if the stored set is still the one we asked about;
 * otherwise a peer's newer set could get this set's sidecar. Without tryLock the state stays in memory.
 */
async function persistAriWindow(record: ManagedRecord, issuerKey: string, info: RenewalInfo, selected: number, deps: AriRefreshDeps): Promise<void> {
  const storage = deps.storage;
  if (!hasTryLock(storage)) return;
  const lockName = certificateLockName(record.certName);
  if (!(await storage.tryLock(lockName).catch(() => false))) return;
  const serial = record.serialNumber;
  await updateCertificateMeta(storage, issuerKey, record.certName, (meta) => meta.serialNumber !== serial ? meta : ({
    ...meta,
    renewal: {
      ...meta.renewal,
      ari: {
        windowStart: new Date(info.windowStart).toISOString(),
        windowEnd: new Date(info.windowEnd).toISOString(),
        selectedTime: new Date(selected).toISOString(),
        retryAfter: new Date(info.retryAfter).toISOString(),
        ...(info.explanationUrl ? { explanationUrl: info.explanationUrl } : {}),
      },
    },
  }), { lock: lockName })
    .catch((e: unknown) => deps.logger.debug({ err: e }, 'could not persist ARI state'))
    .finally(() => storage.unlock(lockName).catch(() => undefined));
}
