/**
 * Reading certificate sets back: verified against their sidecar, rolled
 * forward from `.pending` after an interrupted save, never served torn.
 */
import { CertificateInvalidError, StorageNotFoundError } from '../errors.js';
import {
  CERTIFICATE_META_VERSION,
  checkMeta,
  parseAndMatch,
  parseCertificateMeta,
  serializeMeta,
  sha256,
  verifyFingerprints,
  withFactsOf,
  type CertificateMeta,
  type CertificateRef,
  type CertificateSet,
} from './certificate-meta.js';
import { applyWrites } from './fenced.js';
import { certificateKeys, certificatesPrefix, type CertificateKeys } from './layout.js';
import { leafValidity } from './leaf-validity.js';
import { ifExists, listIfExists, loadIfExists } from './load-if-exists.js';
import type { FencedWrite, Storage } from './types.js';

/**
 * Loads and verifies a set. Throws StorageNotFoundError when nothing is
 * stored for the name, CertificateInvalidError (naming the key) when what is
 * stored is incomplete, unparseable, or does not match its sidecar.
 */
export async function loadCertificateSet(storage: Storage, issuerKey: string, name: string): Promise<CertificateSet> {
  const keys = certificateKeys(issuerKey, name);
  // A failed check may be a reader racing a writer: look once more (the
  // writer's `.pending` is then visible, or the write is complete).
  for (let attempt = 0; ; attempt++) {
    // `.pending` and the three parts are asked for at once (one round trip to a remote storage, not two):
    // the parts are used only when no `.pending` is there, and a torn read of them is retried by this loop.
    const parts = loadParts(storage, keys);
    parts.catch(() => undefined);
    const pending = await loadIfExists(storage, keys.pending);
    if (pending !== undefined) {
      const set = parsePending(pending);
      if (set !== undefined) {
        await rollForward(storage, keys, pending, set);
        return set;
      }
      // An unreadable `.pending` cannot come from saveCertificateSet over an
      // atomic store; ignore it and fall back to the three parts.
    }
    try {
      return await parts;
    } catch (err) {
      if (attempt === 0 && err instanceof CertificateInvalidError) continue;
      throw err;
    }
  }
}

/**
 * The sidecar of a stored set with its validity read from the stored leaf
 * (cheap: a DER walk to the validity field, no full X.509 parse, no key
 * read), for scheduling many names without loading every set. Throws like
 * loadCertificateSet. A certificate that does not match the sidecar's
 * fingerprint (torn write, racing writer, `.pending` roll-forward) is
 * resolved by loading and verifying the whole set.
 */
export async function loadCertificateMeta(storage: Storage, issuerKey: string, name: string): Promise<CertificateMeta> {
  const keys = certificateKeys(issuerKey, name);
  const [metaRaw, certRaw] = await Promise.all([loadIfExists(storage, keys.meta), loadIfExists(storage, keys.cert)]);
  if (metaRaw !== undefined && certRaw !== undefined) {
    let meta: CertificateMeta | undefined;
    try {
      meta = parseCertificateMeta(metaRaw, keys.meta);
    } catch {
      meta = undefined;
    }
    if (meta !== undefined && sha256(certRaw) === meta.sha256.cert) {
      const validity = leafValidity(certRaw.toString('utf8'), keys.cert);
      return { ...meta, notBefore: validity.notBefore.toISOString(), notAfter: validity.notAfter.toISOString() };
    }
  }
  return (await loadCertificateSet(storage, issuerKey, name)).meta;
}

/**
 * A stored set (`what: 'set'`) or its sidecar (`'meta'`) for a caller that
 * replaces what it cannot use (the manager, the CLI's inventory): undefined
 * when none is stored, or when what is stored is unusable, which is then
 * reported to `onUnusable`. Other storage errors are thrown.
 */
export async function readStoredCertificate(storage: Storage, issuerKey: string, name: string, what: 'set', onUnusable: (error: CertificateInvalidError) => void): Promise<CertificateSet | undefined>;
export async function readStoredCertificate(storage: Storage, issuerKey: string, name: string, what: 'meta', onUnusable: (error: CertificateInvalidError) => void): Promise<CertificateMeta | undefined>;
export async function readStoredCertificate(
  storage: Storage,
  issuerKey: string,
  name: string,
  what: 'set' | 'meta',
  onUnusable: (error: CertificateInvalidError) => void,
): Promise<CertificateSet | CertificateMeta | undefined> {
  try {
    return await ifExists<CertificateSet | CertificateMeta>(() =>
      what === 'set' ? loadCertificateSet(storage, issuerKey, name) : loadCertificateMeta(storage, issuerKey, name),
    );
  } catch (error) {
    if (!(error instanceof CertificateInvalidError)) throw error;
    onUnusable(error);
    return undefined;
  }
}

/**
 * Lists stored sets from folder names only (one list call per issuer; no
 * file is read), so starting with 100,000 stored names stays cheap.
 */
export async function listCertificateNames(storage: Storage, issuerKey?: string): Promise<CertificateRef[]> {
  const issuers = issuerKey === undefined ? (await listIfExists(storage, certificatesPrefix())).map(lastComponent) : [issuerKey];
  const refs: CertificateRef[] = [];
  for (const issuer of issuers) {
    for (const key of await listIfExists(storage, certificatesPrefix(issuer))) {
      refs.push({ issuerKey: issuer, name: lastComponent(key) });
    }
  }
  return refs;
}

/** The three ordinary values of a set, key first (a reader checks the certificate against the sidecar). */
export function partWrites(keys: CertificateKeys, set: CertificateSet): FencedWrite[] {
  return [
    { key: keys.key, value: Buffer.from(set.keyPem) },
    { key: keys.cert, value: Buffer.from(set.certPem) },
    { key: keys.meta, value: serializeMeta(set.meta) },
  ];
}

/**
 * Completes an interrupted save. A failure here is not the reader's problem:
 * the set it returns is complete, and `.pending` stays for the next attempt.
 * Not fenced: the values come from a `.pending` whose writer held the lock,
 * and a newer writer replaces the parts and the `.pending` together.
 */
async function rollForward(storage: Storage, keys: CertificateKeys, pending: Buffer, set: CertificateSet): Promise<void> {
  try {
    await applyWrites(storage, partWrites(keys, set));
    // Delete only the `.pending` we rolled forward, not a newer writer's.
    const now = await loadIfExists(storage, keys.pending);
    if (now !== undefined && now.equals(pending)) await storage.delete(keys.pending);
  } catch {
    // See above: left for the next save or load.
  }
}

function parsePending(raw: Buffer): CertificateSet | undefined {
  try {
    const value = JSON.parse(raw.toString('utf8')) as Partial<CertificateSet> & { v?: unknown };
    if (value.v !== CERTIFICATE_META_VERSION || typeof value.certPem !== 'string' || typeof value.keyPem !== 'string') {
      return undefined;
    }
    const meta = checkMeta(value.meta, 'pending');
    verifyFingerprints(meta, value.certPem, value.keyPem, 'pending');
    const { cert } = parseAndMatch(value.certPem, value.keyPem, 'pending');
    return { certPem: value.certPem, keyPem: value.keyPem, meta: withFactsOf(meta, cert) };
  } catch {
    return undefined;
  }
}

async function loadParts(storage: Storage, keys: CertificateKeys): Promise<CertificateSet> {
  const [keyRaw, certRaw, metaRaw] = await Promise.all([
    loadIfExists(storage, keys.key),
    loadIfExists(storage, keys.cert),
    loadIfExists(storage, keys.meta),
  ]);
  if (keyRaw === undefined && certRaw === undefined && metaRaw === undefined) {
    throw new StorageNotFoundError(keys.cert);
  }
  for (const [raw, key] of [[certRaw, keys.cert], [keyRaw, keys.key], [metaRaw, keys.meta]] as const) {
    if (raw === undefined) throw new CertificateInvalidError(`Certificate set incomplete: ${key} is missing`);
    if (raw.length === 0) throw new CertificateInvalidError(`Certificate set damaged: ${key} is empty`);
  }
  const certPem = (certRaw as Buffer).toString('utf8');
  const keyPem = (keyRaw as Buffer).toString('utf8');
  const meta = parseCertificateMeta(metaRaw as Buffer, keys.meta);
  // Fingerprints before parsing: a mismatch says precisely "torn write or race".
  verifyFingerprints(meta, certPem, keyPem, keys.prefix);
  const { cert } = parseAndMatch(certPem, keyPem, keys.prefix);
  return { certPem, keyPem, meta: withFactsOf(meta, cert) };
}

function lastComponent(key: string): string {
  return key.slice(key.lastIndexOf('/') + 1);
}
