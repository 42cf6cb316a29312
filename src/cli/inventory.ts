/**
 * What is in storage, read from the certificate sidecars only (no keeper, no
 * CA): for `list`, `renew` (which names exist) and `export`/`revoke` (where a
 * name's set lives).
 */
import { DEFAULT_RENEWAL_WINDOW_RATIO } from '../config.js';
import { CertKeeperError, StorageNotFoundError } from '../errors.js';
import { storedRenewalPlan, type RenewalSource } from '../renewal/renewal-policy.js';
import { parseIdentifier } from '../names.js';
import type { CertificateMeta } from '../storage/certificates.js';
import { certificatesPrefix } from '../storage/layout.js';
import type { Storage } from '../storage/types.js';

const DAY_MS = 86_400_000;

export interface StoredCertificate {
  /** Storage name (folder) of the set: its primary name, `*` spelled `wildcard_`. */
  certName: string;
  names: string[];
  issuer: string;
  notBefore: Date;
  notAfter: Date;
  serialNumber: string;
  keyType: string;
  /** Whole days until notAfter (negative once expired). */
  daysLeft: number;
  /** When a keeper sharing this storage will renew it (or retry after failures). */
  nextRenewalAt: Date;
  failures: number;
  lastError: { code?: string; message: string; at: string } | undefined;
  /** What decided the planned renewal (lifetime rule, ARI window, emergency point). */
  renewalReason: RenewalSource;
  ariWindow: { start: string; end: string } | undefined;
}

export interface InventoryOptions {
  now: number;
  renewalWindowRatio?: number | undefined;
}

/** Every certificate set in storage, sorted by name then issuer. Unreadable sidecars are skipped. */
export async function listStoredCertificates(storage: Storage, options: InventoryOptions): Promise<StoredCertificate[]> {
  const out: StoredCertificate[] = [];
  for (const issuerFolder of await listOrEmpty(storage, certificatesPrefix())) {
    for (const folder of await listOrEmpty(storage, issuerFolder)) {
      const certName = folder.slice(folder.lastIndexOf('/') + 1);
      const meta = await readMeta(storage, `${folder}/${certName}.json`);
      if (meta) out.push(describe(certName, meta, options));
    }
  }
  return out.sort((a, b) => a.certName.localeCompare(b.certName) || a.issuer.localeCompare(b.issuer));
}

/**
 * The stored sets holding `name` (as primary or other name), newest first;
 * with `issuerKey`, only that issuer's.
 */
export async function findStoredCertificates(storage: Storage, name: string, options: InventoryOptions & { issuerKey?: string | undefined }): Promise<StoredCertificate[]> {
  const wanted = parseIdentifier(name).value;
  const all = await listStoredCertificates(storage, options);
  return all
    .filter((c) => c.names.includes(wanted) && (options.issuerKey === undefined || c.issuer === options.issuerKey))
    .sort((a, b) => b.notAfter.getTime() - a.notAfter.getTime());
}

function describe(certName: string, meta: CertificateMeta, options: InventoryOptions): StoredCertificate {
  const notBefore = Date.parse(meta.notBefore);
  const notAfter = Date.parse(meta.notAfter);
  const renewal = meta.renewal ?? { failures: 0 };
  const plan = storedRenewalPlan(meta, options.renewalWindowRatio ?? DEFAULT_RENEWAL_WINDOW_RATIO);
  let next: number;
  if (renewal.failures > 0 && renewal.nextAttemptAt) {
    next = Date.parse(renewal.nextAttemptAt);
  } else {
    next = plan.dueAt;
  }
  return {
    certName,
    names: [...meta.names],
    issuer: meta.issuerKey,
    notBefore: new Date(notBefore),
    notAfter: new Date(notAfter),
    serialNumber: meta.serialNumber,
    keyType: meta.keyType,
    daysLeft: Math.floor((notAfter - options.now) / DAY_MS),
    nextRenewalAt: new Date(next),
    failures: renewal.failures,
    lastError: renewal.lastError ? { ...renewal.lastError } : undefined,
    renewalReason: plan.source,
    ariWindow: meta.renewal?.ari ? { start: meta.renewal.ari.windowStart, end: meta.renewal.ari.windowEnd } : undefined,
  };
}

async function listOrEmpty(storage: Storage, prefix: string): Promise<string[]> {
  try {
    return await storage.list(prefix, false);
  } catch (error) {
    if (error instanceof StorageNotFoundError) return [];
    throw error;
  }
}

async function readMeta(storage: Storage, key: string): Promise<CertificateMeta | undefined> {
  try {
    const meta = JSON.parse((await storage.load(key)).toString('utf8')) as CertificateMeta;
    if (!Array.isArray(meta.names) || typeof meta.notAfter !== 'string' || typeof meta.notBefore !== 'string') return undefined;
    return meta;
  } catch (error) {
    if (error instanceof SyntaxError || (error instanceof CertKeeperError && error.code === 'ERR_STORAGE_NOT_FOUND')) return undefined;
    throw error;
  }
}
