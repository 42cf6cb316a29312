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
 * served. Adapters (Redis, PostgreSQL) get this for free: it needs only
 * atomic single-key store.
 *
 * The sidecar is a cache, never the authority on validity: whoever can write
 * it can also move its dates while the fingerprints still match (they cover
 * certificate and key only). Every load here replaces notBefore/notAfter
 * with the certificate's own.
 *
 * Writers should hold `certificateLockName(name)` (layout.ts): two writers of
 * the same set, or a meta update racing a renewal, are not made safe here.
 */
import { X509Certificate, createHash, createPrivateKey, type KeyObject } from 'node:crypto';
import { CertificateInvalidError, StorageNotFoundError } from '../errors.js';
import { certificateKeys, certificatesPrefix, type CertificateKeys } from './layout.js';
import type { Storage } from './types.js';

export const CERTIFICATE_META_VERSION = 1;

export interface RenewalErrorRecord {
  /** The certkeeper ERR_* code; absent when the error had none. */
  code?: string;
  message: string;
  /** ISO 8601 time of the failure. */
  at: string;
}

/** ARI (RFC 9773) state as last fetched; all times ISO 8601. */
export interface AriState {
  windowStart: string;
  windowEnd: string;
  /** The renewal time chosen at random inside the window. */
  selectedTime: string;
  /** When to fetch renewal info again. */
  retryAfter: string;
  explanationUrl?: string;
}

export interface RenewalState {
  /** Consecutive failed renewal attempts (0 after a success). */
  failures: number;
  /** ISO 8601 time of the next attempt when backing off. */
  nextAttemptAt?: string;
  lastError?: RenewalErrorRecord;
  ari?: AriState;
  /** Room for later fields: unknown ones are kept on rewrite. */
  [extra: string]: unknown;
}

/** The JSON sidecar `<name>.json`. Unknown fields are preserved on rewrite. */
export interface CertificateMeta {
  v: typeof CERTIFICATE_META_VERSION;
  /** Names the certificate covers (first = primary name, which names the storage folder). */
  names: string[];
  issuerKey: string;
  /** ISO 8601. */
  notBefore: string;
  /** ISO 8601. */
  notAfter: string;
  /** Upper-case hex, as node:crypto reports it. */
  serialNumber: string;
  /** `ecdsa-p256`, `ecdsa-p384`, `rsa2048`, ... (or the raw algorithm name for other keys). */
  keyType: string;
  /** Hex SHA-256 of the stored certificate PEM and key PEM bytes. */
  sha256: { cert: string; key: string };
  issuerData?: Record<string, string>;
  renewal: RenewalState;
  [extra: string]: unknown;
}

export interface CertificateSet {
  /** Leaf first, then intermediates. */
  certPem: string;
  keyPem: string;
  meta: CertificateMeta;
}

export interface CertificateRef {
  issuerKey: string;
  /** Storage name (the folder name, e.g. `wildcard_.example.com`). */
  name: string;
}

export interface BuildCertificateMetaInput {
  certPem: string;
  keyPem: string;
  issuerKey: string;
  /** Default: the certificate's subjectAltName entries (DNS names and IP addresses), in order. */
  names?: string[] | undefined;
  issuerData?: Record<string, string> | undefined;
  renewal?: RenewalState | undefined;
}

/** Builds the sidecar for a certificate and key, reading dates, serial and names from the certificate. */
export function buildCertificateMeta(input: BuildCertificateMetaInput): CertificateMeta {
  const { cert, key } = parseAndMatch(input.certPem, input.keyPem, 'new certificate');
  return certificateMetaFrom({
    ...input,
    names: input.names ?? namesFromCertificate(cert),
    notBefore: new Date(cert.validFrom),
    notAfter: new Date(cert.validTo),
    serialNumber: cert.serialNumber,
    keyType: keyTypeOf(key),
  });
}

export interface CertificateFacts extends BuildCertificateMetaInput {
  names: string[];
  notBefore: Date;
  notAfter: Date;
  serialNumber: string;
  keyType: string;
}

/** The sidecar from facts already read from a parsed certificate (e.g. a CertificateMaterial): no parsing here. */
export function certificateMetaFrom(facts: CertificateFacts): CertificateMeta {
  if (facts.names.length === 0) throw new CertificateInvalidError('The certificate names no DNS name or IP address');
  const meta: CertificateMeta = {
    v: CERTIFICATE_META_VERSION,
    names: [...facts.names],
    issuerKey: facts.issuerKey,
    notBefore: facts.notBefore.toISOString(),
    notAfter: facts.notAfter.toISOString(),
    serialNumber: facts.serialNumber,
    keyType: facts.keyType,
    sha256: { cert: sha256(facts.certPem), key: sha256(facts.keyPem) },
    renewal: facts.renewal ? { ...facts.renewal } : { failures: 0 },
  };
  if (facts.issuerData) meta.issuerData = { ...facts.issuerData };
  return meta;
}

/**
 * Stores a set crash-safely: `.pending` (all three parts in one value), then
 * `.key`, `.crt`, `.json`, then deletes `.pending`. The fingerprints in the
 * stored sidecar are always computed here. The set is stored under its first
 * name. Throws CertificateInvalidError if the key does not match the
 * certificate (nothing is written then).
 */
export async function saveCertificateSet(storage: Storage, set: CertificateSet): Promise<CertificateSet> {
  parseAndMatch(set.certPem, set.keyPem, 'certificate set to store');
  return storeVerifiedCertificateSet(storage, set);
}

/**
 * saveCertificateSet for a caller that has just parsed the certificate and
 * key and checked that they match (the manager does, through buildMaterial,
 * before it serves them): the same writes without parsing both again.
 */
export async function storeVerifiedCertificateSet(storage: Storage, set: CertificateSet): Promise<CertificateSet> {
  const name = set.meta.names[0];
  if (name === undefined) throw new CertificateInvalidError('The certificate set has no names to store it under');
  const meta: CertificateMeta = {
    ...structuredClone(set.meta),
    v: CERTIFICATE_META_VERSION,
    sha256: { cert: sha256(set.certPem), key: sha256(set.keyPem) },
  };
  const saved: CertificateSet = { certPem: set.certPem, keyPem: set.keyPem, meta };
  const keys = certificateKeys(meta.issuerKey, name);
  await storage.store(keys.pending, Buffer.from(JSON.stringify({ v: CERTIFICATE_META_VERSION, ...saved })));
  await writeParts(storage, keys, saved);
  await storage.delete(keys.pending);
  return saved;
}

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
    const pending = await loadOptional(storage, keys.pending);
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
      return await loadParts(storage, keys);
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
  const [metaRaw, certRaw] = await Promise.all([loadOptional(storage, keys.meta), loadOptional(storage, keys.cert)]);
  if (metaRaw !== undefined && certRaw !== undefined && metaRaw.length > 0) {
    let meta: CertificateMeta | undefined;
    try {
      meta = checkMeta(JSON.parse(metaRaw.toString('utf8')), keys.meta);
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
 * notBefore and notAfter of the first certificate of a PEM chain, read
 * straight from its DER: Certificate > tbsCertificate > ([0] version),
 * serialNumber, signature, issuer, validity. About a hundred times cheaper
 * than new X509Certificate(), which matters for 100,000 stored names.
 */
export function leafValidity(certPem: string, where = 'certificate'): { notBefore: Date; notAfter: Date } {
  const bad = (): never => {
    throw new CertificateInvalidError(`Certificate in ${where} cannot be parsed (validity)`);
  };
  const match = /-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+?)-----END CERTIFICATE-----/.exec(certPem);
  if (!match) return bad();
  const der = Buffer.from((match[1] as string).replace(/\s+/g, ''), 'base64');
  /** Reads the TLV at `at`: [tag, start of value, end of value]. */
  const tlv = (at: number): [number, number, number] => {
    if (at + 2 > der.length) return bad();
    const tag = der[at] as number;
    let len = der[at + 1] as number;
    let start = at + 2;
    if (len & 0x80) {
      const bytes = len & 0x7f;
      if (bytes === 0 || bytes > 4 || start + bytes > der.length) return bad();
      len = 0;
      for (let i = 0; i < bytes; i++) len = len * 256 + (der[start + i] as number);
      start += bytes;
    }
    if (start + len > der.length) return bad();
    return [tag, start, start + len];
  };
  const [certTag, certStart] = tlv(0);
  const [tbsTag, tbsStart] = tlv(certStart);
  if (certTag !== 0x30 || tbsTag !== 0x30) return bad();
  let at = tbsStart;
  let [tag, , end] = tlv(at);
  if (tag === 0xa0) [tag, , end] = tlv((at = end));
  // serialNumber (INTEGER), then signature and issuer (SEQUENCEs), then validity.
  if (tag !== 0x02) return bad();
  for (let i = 0; i < 2; i++) {
    [tag, , end] = tlv((at = end));
    if (tag !== 0x30) return bad();
  }
  const [validityTag, validityStart] = tlv((at = end));
  if (validityTag !== 0x30) return bad();
  const time = (offset: number): [Date, number] => {
    const [t, start, stop] = tlv(offset);
    const text = der.toString('latin1', start, stop);
    const m = t === 0x17 ? /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(text) : t === 0x18 ? /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(text) : null;
    if (!m) return bad();
    let year = Number(m[1]);
    // RFC 5280 4.1.2.5.1: two-digit years 50-99 are 19xx.
    if (t === 0x17) year += year >= 50 ? 1900 : 2000;
    const ms = Date.UTC(year, Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]));
    return [new Date(ms), stop];
  };
  const [notBefore, next] = time(validityStart);
  const [notAfter] = time(next);
  return { notBefore, notAfter };
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
  await storage.store(keys.meta, serializeMeta(meta));
  return meta;
}

export async function deleteCertificateSet(storage: Storage, issuerKey: string, name: string): Promise<void> {
  await storage.delete(certificateKeys(issuerKey, name).prefix);
}

/**
 * Lists stored sets from folder names only (one list call per issuer; no
 * file is read), so starting with 100,000 stored names stays cheap.
 */
export async function listCertificateNames(storage: Storage, issuerKey?: string): Promise<CertificateRef[]> {
  const issuers =
    issuerKey === undefined ? (await listOrEmpty(storage, certificatesPrefix())).map(lastComponent) : [issuerKey];
  const refs: CertificateRef[] = [];
  for (const issuer of issuers) {
    for (const key of await listOrEmpty(storage, certificatesPrefix(issuer))) {
      refs.push({ issuerKey: issuer, name: lastComponent(key) });
    }
  }
  return refs;
}

/** Hex SHA-256 of the UTF-8 bytes of a PEM string (what the sidecar records). */
export function sha256(text: string | Uint8Array): string {
  return createHash('sha256').update(text).digest('hex');
}

async function writeParts(storage: Storage, keys: CertificateKeys, set: CertificateSet): Promise<void> {
  await storage.store(keys.key, Buffer.from(set.keyPem));
  await storage.store(keys.cert, Buffer.from(set.certPem));
  await storage.store(keys.meta, serializeMeta(set.meta));
}

/**
 * Completes an interrupted save. A failure here is not the reader's problem:
 * the set it returns is complete, and `.pending` stays for the next attempt.
 */
async function rollForward(storage: Storage, keys: CertificateKeys, pending: Buffer, set: CertificateSet): Promise<void> {
  try {
    await writeParts(storage, keys, set);
    // Delete only the `.pending` we rolled forward, not a newer writer's.
    const now = await loadOptional(storage, keys.pending);
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
    loadOptional(storage, keys.key),
    loadOptional(storage, keys.cert),
    loadOptional(storage, keys.meta),
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
  let metaJson: unknown;
  try {
    metaJson = JSON.parse((metaRaw as Buffer).toString('utf8'));
  } catch (err) {
    throw new CertificateInvalidError(`Certificate sidecar ${keys.meta} is not valid JSON`, { cause: err });
  }
  const meta = checkMeta(metaJson, keys.meta);
  // Fingerprints before parsing: a mismatch says precisely "torn write or race".
  verifyFingerprints(meta, certPem, keyPem, keys.prefix);
  const { cert } = parseAndMatch(certPem, keyPem, keys.prefix);
  return { certPem, keyPem, meta: withFactsOf(meta, cert) };
}

/** The sidecar with what only the certificate may say: its validity and serial. */
function withFactsOf(meta: CertificateMeta, cert: X509Certificate): CertificateMeta {
  return {
    ...meta,
    notBefore: new Date(cert.validFrom).toISOString(),
    notAfter: new Date(cert.validTo).toISOString(),
    serialNumber: cert.serialNumber,
  };
}

function verifyFingerprints(meta: CertificateMeta, certPem: string, keyPem: string, where: string): void {
  if (sha256(certPem) !== meta.sha256.cert) {
    throw new CertificateInvalidError(`Certificate in ${where} does not match its sidecar fingerprint (torn write or concurrent writer)`);
  }
  if (sha256(keyPem) !== meta.sha256.key) {
    throw new CertificateInvalidError(`Private key in ${where} does not match its sidecar fingerprint (torn write or concurrent writer)`);
  }
}

function checkMeta(value: unknown, where: string): CertificateMeta {
  const bad = (what: string): never => {
    throw new CertificateInvalidError(`Certificate sidecar ${where} is invalid: ${what}`);
  };
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return bad('not an object');
  const meta = value as Record<string, unknown>;
  if (meta.v !== CERTIFICATE_META_VERSION) return bad(`unsupported version ${JSON.stringify(meta.v)}`);
  if (!Array.isArray(meta.names) || meta.names.length === 0 || !meta.names.every((n) => typeof n === 'string')) {
    return bad('"names" must be a non-empty list of strings');
  }
  for (const field of ['issuerKey', 'notBefore', 'notAfter', 'serialNumber', 'keyType'] as const) {
    if (typeof meta[field] !== 'string') return bad(`"${field}" must be a string`);
  }
  const fp = meta.sha256 as Record<string, unknown> | undefined;
  if (typeof fp !== 'object' || fp === null || typeof fp.cert !== 'string' || typeof fp.key !== 'string') {
    return bad('"sha256" must hold "cert" and "key" fingerprints');
  }
  const renewal = meta.renewal as Record<string, unknown> | undefined;
  if (typeof renewal !== 'object' || renewal === null || typeof renewal.failures !== 'number') {
    return bad('"renewal.failures" must be a number');
  }
  return value as CertificateMeta;
}

/** Parses certificate (first PEM block) and key and checks they belong together. */
function parseAndMatch(certPem: string, keyPem: string, where: string): { cert: X509Certificate; key: KeyObject } {
  let cert: X509Certificate;
  let key: KeyObject;
  try {
    cert = new X509Certificate(certPem);
  } catch (err) {
    throw new CertificateInvalidError(`Certificate in ${where} cannot be parsed`, { cause: codeOnly(err) });
  }
  try {
    key = createPrivateKey(keyPem);
  } catch (err) {
    // Never pass the original error on: some carry the input, and this is a private key.
    throw new CertificateInvalidError(`Private key in ${where} cannot be parsed`, { cause: codeOnly(err) });
  }
  if (!cert.checkPrivateKey(key)) {
    throw new CertificateInvalidError(`Private key in ${where} does not match its certificate`);
  }
  return { cert, key };
}

function namesFromCertificate(cert: X509Certificate): string[] {
  const san = cert.subjectAltName;
  if (!san) return [];
  const names: string[] = [];
  for (const entry of san.split(', ')) {
    if (entry.startsWith('DNS:')) names.push(entry.slice(4));
    else if (entry.startsWith('IP Address:')) names.push(entry.slice(11));
  }
  return names;
}

function keyTypeOf(key: KeyObject): string {
  const details = key.asymmetricKeyDetails;
  if (key.asymmetricKeyType === 'ec') {
    if (details?.namedCurve === 'prime256v1') return 'ecdsa-p256';
    if (details?.namedCurve === 'secp384r1') return 'ecdsa-p384';
    return `ecdsa-${details?.namedCurve ?? 'unknown'}`;
  }
  if (key.asymmetricKeyType === 'rsa') return `rsa${details?.modulusLength ?? ''}`;
  return key.asymmetricKeyType ?? 'unknown';
}

async function loadOptional(storage: Storage, key: string): Promise<Buffer | undefined> {
  try {
    return await storage.load(key);
  } catch (err) {
    if (err instanceof StorageNotFoundError) return undefined;
    throw err;
  }
}

async function listOrEmpty(storage: Storage, prefix: string): Promise<string[]> {
  try {
    return await storage.list(prefix, false);
  } catch (err) {
    if (err instanceof StorageNotFoundError) return [];
    throw err;
  }
}

function lastComponent(key: string): string {
  return key.slice(key.lastIndexOf('/') + 1);
}

/** Keeps an error's code and class name only, so no input bytes can leak through `cause`. */
function codeOnly(err: unknown): Error {
  const code = typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;
  return new Error(typeof code === 'string' ? code : 'parse error');
}

function serializeMeta(meta: CertificateMeta): Buffer {
  return Buffer.from(`${JSON.stringify(meta, null, 2)}\n`);
}
