/**
 * ARI (RFC 9773): asks the CA when it suggests renewing the served
 * certificate, moves the renewal due time into that window, and keeps the
 * answer in the certificate's sidecar so a restart and every peer sharing the
 * storage pick the same moment.
 *
 * The state belongs to one certificate (its serial): an answer that arrives
 * after the certificate was replaced is dropped, and a new certificate starts
 * with no window. A fleet polls each certificate once per Retry-After: the
 * process that takes the certificate's lock asks and stores the answer under
 * it; a process that finds the lock taken, or a fresh answer stored, reads the
 * stored one instead of asking.
 */
import { ariRetryAt, MAX_ARI_RETRY_AFTER_MS, MIN_ARI_RETRY_AFTER_MS, shouldQueryAri } from '../acme/ari.js';
import type { Clock } from '../clock.js';
import { DEFAULT_ARI_FAILURE_RETRY_MS, DEFAULT_ARI_PEER_WAIT_MS, DEFAULT_ARI_RETRY_AFTER_MS } from '../defaults.js';
import { AbortedError, AcmeProblemError } from '../errors.js';
import type { Issuer, RenewalInfo } from '../issuers/types.js';
import type { Logger } from '../logger.js';
import { loadCertificateMeta, updateCertificateMeta, type CertificateMeta } from '../storage/certificates.js';
import { certificateLockName } from '../storage/layout.js';
import { hasTryLock, type Storage } from '../storage/types.js';
import { ariIssuerOf, currentAri, setAri, type ManagedRecord } from './managed-record.js';
import { planRenewal } from './renewal-policy.js';
import { servedCertificatePem } from './served-pem.js';

/** Where a window came from: the CA (this process asked) or the sidecar a peer (or this process earlier) stored. */
export type AriSource = 'ca' | 'storage';

/** A new window for the served certificate, for the `cert_renewal_window` event. */
export interface AriWindowNotice {
  serialNumber: string | undefined;
  windowStart: number;
  windowEnd: number;
  selectedTime: number;
  explanationUrl: string | undefined;
  source: AriSource;
}

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
  /** A peer stored a newer certificate than the one served: take it (the renewal path adopts it) rather than ask about ours. */
  peerReplaced(): void;
  /** The served certificate got a new window. */
  onWindow?(notice: AriWindowNotice): void;
}

/** Refreshes in a row that found the lock taken and no fresh stored answer, per record. */
const peerBusy = new WeakMap<ManagedRecord, number>();
/** After this many, the refresh asks the CA itself (about 1.5 minutes with the default peer wait). */
const MAX_PEER_BUSY = 3;
/** Failed ARI requests in a row, per record: a timeout under load must not silence ARI for hours (a drill would be missed). */
const failuresInARow = new WeakMap<ManagedRecord, number>();
/** From this many failures in a row on, each failure is logged at warn level (before: debug, a blip is not news). */
const WARN_AFTER_FAILURES = 3;

/** What a refresh did: asked the CA, read a stored answer, dropped a stale one, or found nothing to do. */
export type AriRefreshOutcome = 'asked' | 'stored' | 'peer-busy' | 'stale' | 'failed' | 'replaced' | 'skipped';

/** Refreshes the served certificate's window (from the CA or from storage), reschedules renewal and the next refresh. */
export async function refreshAri(record: ManagedRecord, deps: AriRefreshDeps): Promise<AriRefreshOutcome> {
  const issuer = ariIssuerOf(record);
  const { notAfter, issuerKey, serialNumber: serial } = record;
  if (!issuer?.renewalInfo || notAfter === undefined) return 'skipped';
  if (!shouldQueryAri({ notAfter }, deps.clock.now())) return 'skipped';
  const storage = deps.storage;
  const certPem = await servedCertificatePem(record, storage, deps.logger);
  if (certPem === undefined) return 'skipped';
  // Without tryLock (or a stored set) there is no one to share with: ask, keep the answer in memory.
  if (issuerKey === undefined || !hasTryLock(storage)) return ask(record, issuer, certPem, serial, deps, undefined);
  const lockName = certificateLockName(record.certName);
  if (!(await storage.tryLock(lockName).catch(() => false))) {
    const outcome = await readPeerAnswer(record, issuerKey, serial, deps);
    const busy = outcome === 'peer-busy' ? (peerBusy.get(record) ?? 0) + 1 : 0;
    peerBusy.set(record, busy);
    // A holder that never stores an answer (stuck, or a lock left behind): ask ourselves, keeping the answer in memory.
    if (busy < MAX_PEER_BUSY) return outcome;
    peerBusy.delete(record);
    deps.logger.debug({ names: record.names }, 'the certificate lock stayed taken without a stored ARI answer; asking without it');
    return ask(record, issuer, certPem, serial, deps, undefined);
  }
  peerBusy.delete(record);
  try {
    const meta = await readMeta(storage, issuerKey, record.certName, deps.logger);
    if (meta && meta.serialNumber !== serial) return replaced(deps);
    const stored = meta?.renewal?.ari;
    if (stored && Date.parse(stored.retryAfter) > deps.clock.now()) return takeStored(record, serial, stored, deps);
    return await ask(record, issuer, certPem, serial, deps, meta ? { issuerKey, lockName } : undefined);
  } finally {
    await storage.unlock(lockName).catch(() => undefined);
  }
}

async function ask(
  record: ManagedRecord,
  issuer: Issuer,
  certPem: string,
  serial: string | undefined,
  deps: AriRefreshDeps,
  persistUnder: { issuerKey: string; lockName: string } | undefined,
): Promise<AriRefreshOutcome> {
  let info: RenewalInfo | undefined;
  try {
    info = await (issuer.renewalInfo as NonNullable<Issuer['renewalInfo']>)(certPem, deps.signal);
  } catch (error) {
    if (error instanceof AbortedError || deps.signal.aborted) return 'failed';
    const failures = (failuresInARow.get(record) ?? 0) + 1;
    failuresInARow.set(record, failures);
    const level = failures >= WARN_AFTER_FAILURES ? 'warn' : 'debug';
    deps.logger[level]({ err: error, names: record.names, failuresInARow: failures }, 'ARI request failed; the lifetime rule still applies');
    if (record.serialNumber === serial) deps.askAgainAt(retryAtAfter(error, deps.clock.now(), failures));
    return 'failed';
  }
  // Replaced while we asked: this answer is about the old certificate, and the new one has its own refresh queued.
  if (record.serialNumber !== serial) {
    deps.logger.debug({ names: record.names, serialNumber: serial }, 'ARI answer for a replaced certificate dropped');
    return 'stale';
  }
  if (info === undefined) {
    // No usable answer: keep the lifetime rule, ask again later.
    deps.askAgainAt(ariRetryAt(undefined, deps.clock.now()));
    return 'failed';
  }
  failuresInARow.delete(record);
  // Logged and reported, never fetched: the page is for people.
  if (info.explanationUrl) deps.logger.info({ names: record.names, serialNumber: serial, explanationUrl: info.explanationUrl }, 'CA suggests a renewal window');
  const selected = take(record, serial, info, undefined, 'ca', deps);
  if (persistUnder) await persistAriWindow(record, serial, info, selected, persistUnder, deps);
  return 'asked';
}

/** Another holder of the lock asks (or renews); its stored answer is used when fresh, else it is read again shortly. */
async function readPeerAnswer(record: ManagedRecord, issuerKey: string, serial: string | undefined, deps: AriRefreshDeps): Promise<AriRefreshOutcome> {
  const meta = await readMeta(deps.storage, issuerKey, record.certName, deps.logger);
  if (record.serialNumber !== serial) return 'stale';
  if (meta && meta.serialNumber !== serial) return replaced(deps);
  const stored = meta?.renewal?.ari;
  if (stored && Date.parse(stored.retryAfter) > deps.clock.now()) return takeStored(record, serial, stored, deps);
  deps.askAgainAt(deps.clock.now() + DEFAULT_ARI_PEER_WAIT_MS);
  return 'peer-busy';
}

function takeStored(record: ManagedRecord, serial: string | undefined, stored: NonNullable<CertificateMeta['renewal']['ari']>, deps: AriRefreshDeps): AriRefreshOutcome {
  // Stored on the scheduler's clock (persistAriWindow writes what take() scheduled).
  const info: RenewalInfo = {
    windowStart: Date.parse(stored.windowStart),
    windowEnd: Date.parse(stored.windowEnd),
    retryAfter: Date.parse(stored.retryAfter),
    ...(stored.explanationUrl ? { explanationUrl: stored.explanationUrl } : {}),
  };
  // The stored selected time too: every process of the fleet renews at the same moment (and one of them orders).
  take(record, serial, info, Date.parse(stored.selectedTime), 'storage', deps);
  return 'stored';
}

function replaced(deps: AriRefreshDeps): AriRefreshOutcome {
  deps.peerReplaced();
  return 'replaced';
}

/** Takes a window for the certificate `serial`, reschedules, and returns the selected renewal time. */
function take(record: ManagedRecord, serial: string | undefined, info: RenewalInfo, storedSelected: number | undefined, source: AriSource, deps: AriRefreshDeps): number {
  const current = currentAri(record);
  const window = { windowStart: info.windowStart, windowEnd: info.windowEnd, explanationUrl: info.explanationUrl };
  const changed = current?.window.windowStart !== window.windowStart || current?.window.windowEnd !== window.windowEnd;
  const plan = planRenewal({
    notBefore: record.notBefore ?? 0,
    notAfter: record.notAfter ?? 0,
    ratio: deps.renewalWindowRatio,
    ari: window,
    ariSelectedTime: storedSelected ?? (changed ? undefined : current?.selectedTime),
  });
  const selected = plan.ariSelectedTime ?? window.windowStart;
  setAri(record, serial, window, selected);
  if (changed) {
    deps.onWindow?.({ serialNumber: serial, windowStart: window.windowStart, windowEnd: window.windowEnd, selectedTime: selected, explanationUrl: info.explanationUrl, source });
  }
  deps.reschedule();
  // The issuer may run on another clock than the scheduler (a test's fake one): the delay is what counts.
  deps.askAgainAt(info.retryAfterMs !== undefined ? deps.clock.now() + info.retryAfterMs : info.retryAfter);
  return selected;
}

/**
 * After a failed request: the CA's Retry-After (429/503, or the per-CA pause), clamped like any ARI Retry-After;
 * else a backoff from a minute, doubling per failure in a row, up to the usual poll interval.
 */
export function retryAtAfter(error: unknown, now: number, failuresInARow = 1): number {
  const clamp = (at: number): number => Math.min(now + MAX_ARI_RETRY_AFTER_MS, Math.max(now + MIN_ARI_RETRY_AFTER_MS, at));
  const retryAt = (error as { retryAt?: unknown }).retryAt;
  if (typeof retryAt === 'number') return clamp(retryAt);
  if (error instanceof AcmeProblemError && error.retryAfterMs !== undefined) return clamp(now + error.retryAfterMs);
  return now + Math.min(DEFAULT_ARI_RETRY_AFTER_MS, DEFAULT_ARI_FAILURE_RETRY_MS * 2 ** Math.min(20, Math.max(0, failuresInARow - 1)));
}

async function readMeta(storage: Storage, issuerKey: string, certName: string, logger: Logger): Promise<CertificateMeta | undefined> {
  try {
    return await loadCertificateMeta(storage, issuerKey, certName);
  } catch (error) {
    logger.debug({ err: error, name: certName }, 'could not read the stored ARI state');
    return undefined;
  }
}

/** Written under the certificate lock, and only if the stored set is still the one we asked about (a peer's newer set keeps its own). */
async function persistAriWindow(
  record: ManagedRecord,
  serial: string | undefined,
  info: RenewalInfo,
  selected: number,
  { issuerKey, lockName }: { issuerKey: string; lockName: string },
  deps: AriRefreshDeps,
): Promise<void> {
  await updateCertificateMeta(deps.storage, issuerKey, record.certName, (meta) => meta.serialNumber !== serial ? meta : ({
    ...meta,
    renewal: {
      ...meta.renewal,
      ari: {
        windowStart: new Date(info.windowStart).toISOString(),
        windowEnd: new Date(info.windowEnd).toISOString(),
        selectedTime: new Date(selected).toISOString(),
        retryAfter: new Date(info.retryAfterMs !== undefined ? deps.clock.now() + info.retryAfterMs : info.retryAfter).toISOString(),
        ...(info.explanationUrl ? { explanationUrl: info.explanationUrl } : {}),
      },
    },
  }), { lock: lockName }).catch((e: unknown) => deps.logger.debug({ err: e }, 'could not persist ARI state'));
}
