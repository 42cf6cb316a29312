/**
 * Crash-safe certificate sets over any Storage.
 *
 * certmagic writes key, certificate and metadata as three separate values, so
 * a crash between them can leave a new key beside an old certificate. Here a
 * set is first written as ONE value, `<name>.pending` (one atomic store holds
 * all three parts), then the three ordinary keys, then the pending value is
 * deleted. A reader that finds `.pending` knows it is complete and rolls it
 * forward; otherwise it checks the sidecar's SHA-256 fingerprints against the
 * certificate and key it read, so a torn or racing read is detected, never
 * served (certificate-read.ts). Adapters (Redis, PostgreSQL) get this for
 * free: it needs only atomic single-key store.
 *
 * Writers hold `certificateLockName(name)` (layout.ts) and pass it as `lock`:
 * on a storage with fenced writes the whole set is then ONE fenced write, so a
 * holder whose lease ran out can never overwrite a newer set.
 */
import { CertificateInvalidError } from '../errors.js';
import {
  CERTIFICATE_META_VERSION,
  parseAndMatch,
  serializeMeta,
  sha256,
  type CertificateMeta,
  type CertificateSet,
} from './certificate-meta.js';
import { loadCertificateSet, partWrites } from './certificate-read.js';
import { writeUnderLock } from './fenced.js';
import { certificateKeys } from './layout.js';
import type { Storage } from './types.js';

export * from './certificate-meta.js';
export { loadCertificateSet, loadCertificateMeta, readStoredCertificate, listCertificateNames } from './certificate-read.js';
export { leafValidity } from './leaf-validity.js';

export interface CertificateWriteOptions {
  /** The lock the caller holds for this set (certificateLockName): the write is refused once it is lost. */
  lock?: string | undefined;
}

/**
 * Stores a set crash-safely: `.pending` (all three parts in one value), then
 * `.key`, `.crt`, `.json`, then deletes `.pending`. The fingerprints in the
 * stored sidecar are always computed here. The set is stored under its first
 * name. Throws CertificateInvalidError if the key does not match the
 * certificate (nothing is written then).
 */
export async function saveCertificateSet(storage: Storage, set: CertificateSet, options: CertificateWriteOptions = {}): Promise<CertificateSet> {
  parseAndMatch(set.certPem, set.keyPem, 'certificate set to store');
  return storeVerifiedCertificateSet(storage, set, options);
}

/**
 * saveCertificateSet for a caller that has just parsed the certificate and
 * key and checked that they match (the manager does, through buildMaterial,
 * before it serves them): the same writes without parsing both again.
 */
export async function storeVerifiedCertificateSet(storage: Storage, set: CertificateSet, options: CertificateWriteOptions = {}): Promise<CertificateSet> {
  const name = set.meta.names[0];
  if (name === undefined) throw new CertificateInvalidError('The certificate set has no names to store it under');
  const meta: CertificateMeta = {
    ...structuredClone(set.meta),
    v: CERTIFICATE_META_VERSION,
    sha256: { cert: sha256(set.certPem), key: sha256(set.keyPem) },
  };
  const saved: CertificateSet = { certPem: set.certPem, keyPem: set.keyPem, meta };
  const keys = certificateKeys(meta.issuerKey, name);
  // One list: a backend that applies it at once never shows `.pending`; one that applies it in
  // order (a file system) keeps it as the write-ahead copy a reader rolls forward. While `.pending`
  // exists the three parts may land in any order (a file system syncs their folder once for them).
  await writeUnderLock(storage, options.lock, [
    { key: keys.pending, value: Buffer.from(JSON.stringify({ v: CERTIFICATE_META_VERSION, ...saved })) },
    ...partWrites(keys, saved).map((w) => ({ ...w, unordered: true })),
    { key: keys.pending, delete: true },
  ]);
  return saved;
}

/**
 * Rewrites only the sidecar, e.g. to record renewal state. The update cannot
 * change what is read from the certificate (fingerprints, names, dates,
 * serial, key type, issuer). Returns the stored meta.
 */
export async function updateCertificateMeta(
  storage: Storage,
  issuerKey: string,
  name: string,
  update: (meta: CertificateMeta) => CertificateMeta,
  options: CertificateWriteOptions = {},
): Promise<CertificateMeta> {
  const keys = certificateKeys(issuerKey, name);
  const current = await loadCertificateSet(storage, issuerKey, name);
  const updated = update(structuredClone(current.meta));
  if (typeof updated !== 'object' || updated === null) {
    throw new CertificateInvalidError(`The meta update for ${keys.meta} did not return an object`);
  }
  const fixed = current.meta;
  const meta: CertificateMeta = {
    ...updated,
    v: CERTIFICATE_META_VERSION,
    names: fixed.names,
    issuerKey: fixed.issuerKey,
    notBefore: fixed.notBefore,
    notAfter: fixed.notAfter,
    serialNumber: fixed.serialNumber,
    keyType: fixed.keyType,
    sha256: fixed.sha256,
  };
  await writeUnderLock(storage, options.lock, [{ key: keys.meta, value: serializeMeta(meta) }]);
  return meta;
}

export async function deleteCertificateSet(storage: Storage, issuerKey: string, name: string, options: CertificateWriteOptions = {}): Promise<void> {
  await writeUnderLock(storage, options.lock, [{ key: certificateKeys(issuerKey, name).prefix, delete: true }]);
}
