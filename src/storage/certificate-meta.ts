/**
 * The certificate sidecar `<name>.json`: its shape, how it is built from a
 * certificate, and the one parser and checker every reader uses. The sidecar
 * is a cache, never the authority on validity: whoever can write it can also
 * move its dates while the fingerprints still match (they cover certificate
 * and key only), so readers replace notBefore/notAfter with the certificate's own.
 */
import { X509Certificate, createHash, createPrivateKey, type KeyObject } from 'node:crypto';
import { CertificateInvalidError } from '../errors.js';

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
  /** ACME profile the certificate was issued under, when the CA or the order named one. */
  profile?: string;
  /** True when the order asked for `profile` (not just the CA's default): a renewal asks for it again. */
  profileRequested?: boolean;
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
  profile?: string | undefined;
  profileRequested?: boolean | undefined;
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
  if (facts.profile !== undefined) {
    meta.profile = facts.profile;
    if (facts.profileRequested === true) meta.profileRequested = true;
  }
  return meta;
}

/** Hex SHA-256 of the UTF-8 bytes of a PEM string (what the sidecar records). */
export function sha256(text: string | Uint8Array): string {
  return createHash('sha256').update(text).digest('hex');
}

/** The sidecar as stored: pretty JSON, one trailing newline. */
export function serializeMeta(meta: CertificateMeta): Buffer {
  return Buffer.from(`${JSON.stringify(meta, null, 2)}\n`);
}

/** The one sidecar reader: parses a stored sidecar and checks its shape; throws CertificateInvalidError naming `where`. */
export function parseCertificateMeta(raw: Buffer, where: string): CertificateMeta {
  if (raw.length === 0) throw new CertificateInvalidError(`Certificate set damaged: ${where} is empty`);
  let json: unknown;
  try {
    json = JSON.parse(raw.toString('utf8'));
  } catch (err) {
    throw new CertificateInvalidError(`Certificate sidecar ${where} is not valid JSON`, { cause: err });
  }
  return checkMeta(json, where);
}

/** The sidecar with what only the certificate may say: its validity and serial. */
export function withFactsOf(meta: CertificateMeta, cert: X509Certificate): CertificateMeta {
  return {
    ...meta,
    notBefore: new Date(cert.validFrom).toISOString(),
    notAfter: new Date(cert.validTo).toISOString(),
    serialNumber: cert.serialNumber,
  };
}

export function verifyFingerprints(meta: CertificateMeta, certPem: string, keyPem: string, where: string): void {
  if (sha256(certPem) !== meta.sha256.cert) {
    throw new CertificateInvalidError(`Certificate in ${where} does not match its sidecar fingerprint (torn write or concurrent writer)`);
  }
  if (sha256(keyPem) !== meta.sha256.key) {
    throw new CertificateInvalidError(`Private key in ${where} does not match its sidecar fingerprint (torn write or concurrent writer)`);
  }
}

export function checkMeta(value: unknown, where: string): CertificateMeta {
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
export function parseAndMatch(certPem: string, keyPem: string, where: string): { cert: X509Certificate; key: KeyObject } {
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

/** Keeps an error's code and class name only, so no input bytes can leak through `cause`. */
function codeOnly(err: unknown): Error {
  const code = typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;
  return new Error(typeof code === 'string' ? code : 'parse error');
}
