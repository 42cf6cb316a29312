/**
 * A certificate chain and its key, parsed and checked once, so nothing on the
 * handshake path ever parses PEM or decrypts a key.
 */
import { KeyObject, X509Certificate, createPrivateKey } from 'node:crypto';
import tls from 'node:tls';
import { CertificateInvalidError } from '../errors.js';
import { parseIdentifier } from '../names.js';

export interface CertificateMaterial {
  /** SHA-256 fingerprint of the leaf (colon-separated hex): stable for one certificate. */
  readonly id: string;
  /** Leaf first, then its issuers, PEM. */
  readonly certPem: string;
  /** Unencrypted PKCS#8 PEM. Never log it. */
  readonly keyPem: string;
  /** Normalised DNS names (wildcards as `*.example.com`) and IP addresses the leaf covers. */
  readonly names: readonly string[];
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** Upper-case hex, as node:crypto prints it. */
  readonly serialNumber: string;
  /** True when certkeeper obtains and renews it (and may evict and reload it from storage). */
  readonly managed: boolean;
}

export interface BuildMaterialOptions {
  /** Decrypts an encrypted private key, once, here. */
  passphrase?: string | undefined;
  /** Default false: a certificate loaded from files or memory is unmanaged. */
  managed?: boolean | undefined;
  /** Milliseconds since the epoch used for the validity check; default Date.now(). */
  now?: number | undefined;
  /**
   * Default true. The manager may turn it off to serve an expired certificate
   * from storage while its renewal is pending (better than no certificate).
   */
  checkValidity?: boolean | undefined;
  /** certPem's certificates, parsed already (by the ACME order): used instead of parsing the PEM again. */
  certificates?: readonly X509Certificate[] | undefined;
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** Splits a PEM bundle into its CERTIFICATE blocks, in order. */
export function splitPemCertificates(pem: string): string[] {
  return pem.match(PEM_CERTIFICATE) ?? [];
}

/**
 * Parses and validates a chain and its key: the PEM parses, the key matches
 * the leaf, each certificate is issued (and signed) by the next one, and the
 * leaf is within its validity period. Throws CertificateInvalidError with a
 * reason that never includes key material.
 */
export function buildMaterial(certPem: string | Buffer, keyPem: string | Buffer | KeyObject, options: BuildMaterialOptions = {}): CertificateMaterial {
  const blocks = splitPemCertificates(certPem.toString());
  if (blocks.length === 0) throw new CertificateInvalidError('no PEM CERTIFICATE block found (empty or truncated file?)');
  // Parsed by the caller already (the ACME order): not parsed again.
  const given = options.certificates;
  const chain = given !== undefined && given.length === blocks.length ? given : blocks.map(parseCertificate);
  const leaf = chain[0] as X509Certificate;

  // A KeyObject is a key the caller has parsed (or generated) already: not parsed again.
  const key = keyPem instanceof KeyObject ? privateKeyObject(keyPem) : parsePrivateKey(keyPem, options.passphrase);
  if (!leaf.checkPrivateKey(key)) throw new CertificateInvalidError('the private key does not match the certificate');

  for (let i = 0; i + 1 < chain.length; i++) {
    const child = chain[i] as X509Certificate;
    const parent = chain[i + 1] as X509Certificate;
    if (!child.checkIssued(parent) || !child.verify(parent.publicKey)) {
      throw new CertificateInvalidError(`chain out of order: certificate ${i + 1} is not issued by certificate ${i + 2}`);
    }
  }

  const notBefore = new Date(leaf.validFrom);
  const notAfter = new Date(leaf.validTo);
  if (options.checkValidity !== false) {
    const now = options.now ?? Date.now();
    if (now < notBefore.getTime()) throw new CertificateInvalidError(`the certificate is not valid before ${notBefore.toISOString()}`);
    if (now > notAfter.getTime()) throw new CertificateInvalidError(`the certificate expired at ${notAfter.toISOString()}`);
  }

  const names = certificateNames(leaf);
  if (names.length === 0) throw new CertificateInvalidError('the certificate names no DNS name or IP address');

  return Object.freeze({
    id: leaf.fingerprint256,
    certPem: `${blocks.join('\n')}\n`,
    keyPem: key.export({ type: 'pkcs8', format: 'pem' }).toString(),
    names: Object.freeze(names),
    notBefore,
    notAfter,
    serialNumber: leaf.serialNumber.toUpperCase(),
    managed: options.managed === true,
  });
}

/** Builds the SecureContext for a certificate; `extra` carries the server's ciphers, client CAs, versions... */
export function createContext(material: CertificateMaterial, extra: tls.SecureContextOptions = {}): tls.SecureContext {
  try {
    return tls.createSecureContext({ ...extra, cert: material.certPem, key: material.keyPem });
  } catch (error) {
    throw new CertificateInvalidError(`cannot build a TLS context for ${material.names[0] ?? material.id}`, { cause: error });
  }
}

function parseCertificate(block: string, index: number): X509Certificate {
  try {
    return new X509Certificate(block);
  } catch (error) {
    throw new CertificateInvalidError(`certificate ${index + 1} of the chain does not parse`, { cause: error });
  }
}

function privateKeyObject(key: KeyObject): KeyObject {
  if (key.type !== 'private') throw new CertificateInvalidError(`a ${key.type} key was given where the private key belongs`);
  return key;
}

function parsePrivateKey(keyPem: string | Buffer, passphrase: string | undefined): KeyObject {
  const text = keyPem.toString();
  const encrypted = /ENCRYPTED/.test(text);
  if (encrypted && passphrase === undefined) throw new CertificateInvalidError('the private key is encrypted and no passphrase was given');
  try {
    return createPrivateKey(passphrase === undefined ? { key: text } : { key: text, passphrase });
  } catch (error) {
    // The cause carries OpenSSL's reason (bad decrypt, bad PEM); neither holds key material.
    throw new CertificateInvalidError(
      encrypted ? 'the private key could not be decrypted (wrong passphrase?)' : 'the private key does not parse',
      { cause: error },
    );
  }
}

/**
 * DNS and IP names of the leaf's subjectAltName, normalised. Node quotes a
 * value holding unusual characters as a JSON string; such a value, or any
 * name that fails validation, is skipped: it could never match an SNI lookup.
 * The subject CN is used only when the certificate has no SAN at all.
 */
function certificateNames(leaf: X509Certificate): string[] {
  const names = new Set<string>();
  const san = leaf.subjectAltName;
  if (san) {
    for (const entry of splitSan(san)) {
      const colon = entry.indexOf(':');
      if (colon < 0) continue;
      const type = entry.slice(0, colon);
      if (type !== 'DNS' && type !== 'IP Address') continue;
      addName(names, entry.slice(colon + 1));
    }
  } else {
    const cn = /(?:^|\n)CN=([^\n]+)/.exec(leaf.subject)?.[1];
    if (cn) addName(names, cn);
  }
  return [...names];
}

function addName(names: Set<string>, raw: string): void {
  let value = raw;
  if (value.startsWith('"')) {
    try {
      value = JSON.parse(value) as string;
    } catch {
      return;
    }
  }
  try {
    names.add(parseIdentifier(value).value);
  } catch {
    // not a usable identifier: never matched
  }
}

/** Splits "DNS:a, DNS:\"b, c\"" on commas outside JSON quotes. */
function splitSan(san: string): string[] {
  const out: string[] = [];
  let start = 0;
  let quoted = false;
  for (let i = 0; i < san.length; i++) {
    const c = san[i];
    if (c === '\\' && quoted) i++;
    else if (c === '"') quoted = !quoted;
    else if (c === ',' && !quoted) {
      out.push(san.slice(start, i).trim());
      start = i + 1;
    }
  }
  out.push(san.slice(start).trim());
  return out.filter((s) => s.length > 0);
}
