/**
 * What is in storage, read from the certificate sidecars only (no keeper, no
 * CA): for `list`, `renew` (which names exist) and `export`/`revoke` (where a
 * name's set lives).
 */
import { DEFAULT_RENEWAL_WINDOW_RATIO } from '../defaults.js';
import { storedRenewalPlan, type RenewalSource } from '../renewal/renewal-policy.js';
import { parseIdentifier } from '../names.js';
import { readStoredCertificate, type CertificateMeta } from '../storage/certificates.js';
import { certificatesPrefix } from '../storage/layout.js';
import { listIfExists } from '../storage/load-if-exists.js';
import type { Storage } from '../storage/types.js';

const DAY_MS = 86_400_000;

export interface StoredCertificate {
  /** Storage name (folder) of the set: its primary name, `*` spelled `wildcard_`. */
  certName: string;
  names: string[];
  issuer: string;
  /** ACME profile the certificate was issued under, when known. */
  profile: string | undefined;
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

/** Every certificate set in storage, sorted by name then issuer. Unusable sets (torn, unreadable sidecar) are skipped. */
export async function listStoredCertificates(storage: Storage, options: InventoryOptions): Promise<StoredCertificate[]> {
  const out: StoredCertificate[] = [];
  for (const issuerFolder of await listIfExists(storage, certificatesPrefix())) {
    const issuerKey = issuerFolder.slice(issuerFolder.lastIndexOf('/') + 1);
    for (const folder of await listIfExists(storage, issuerFolder)) {
      const certName = folder.slice(folder.lastIndexOf('/') + 1);
      // The sidecar, its dates read from the certificate itself; an unusable set is left out.
      const meta = await readStoredCertificate(storage, issuerKey, certName, 'meta', () => undefined);
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
    profile: typeof meta.profile === 'string' ? meta.profile : undefined,
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
