/**
 * The test CA's certificate work: its own HTTPS identity, re-signing Pebble's
 * leaves with the profile's lifetime under Pebble's own intermediate (so the
 * chain Pebble serves stays valid), CRLs, and RFC 9773 certificate IDs.
 */
import { createPrivateKey, createPublicKey, webcrypto } from 'node:crypto';
import type * as X509 from '@peculiar/x509';
import { lazyModule } from '../../lazy.js';

const x509 = lazyModule<typeof X509>('@peculiar/x509');
// Node's webcrypto is the Crypto object @peculiar/x509 expects; typed as Node's so no DOM types reach the shipped .d.ts.
const crypto: webcrypto.Crypto = webcrypto;
const ECDSA = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const OID_CRL_DISTRIBUTION_POINTS = '2.5.29.31';
const OID_AUTHORITY_INFO_ACCESS = '1.3.6.1.5.5.7.1.1';
const OID_CRL_NUMBER = '2.5.29.20';

export interface ServerIdentity {
  caPem: string;
  certPem: string;
  keyPem: string;
}

/** A throwaway CA and its leaf for 127.0.0.1 and localhost: the HTTPS certificate of the test CA's front. */
export async function makeServerIdentity(now: number): Promise<ServerIdentity> {
  const caKeys = (await crypto.subtle.generateKey(ECDSA, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const leafKeys = (await crypto.subtle.generateKey(ECDSA, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  // Dated on the system clock: a TLS client checks validity against real time, whatever the test's clock says.
  const notBefore = new Date(Math.min(now, Date.now()) - 3_600_000);
  const notAfter = new Date(Math.max(now, Date.now()) + 30 * 86_400_000);
  const ca = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: randomSerial(),
      name: 'CN=certkeeper test CA front',
      notBefore,
      notAfter,
      keys: caKeys,
      signingAlgorithm: ECDSA,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      ],
    },
    crypto,
  );
  const leaf = await x509.X509CertificateGenerator.create(
    {
      serialNumber: randomSerial(),
      subject: 'CN=localhost',
      issuer: ca.subject,
      notBefore,
      notAfter,
      publicKey: leafKeys.publicKey,
      signingKey: caKeys.privateKey,
      signingAlgorithm: ECDSA,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
        new x509.SubjectAlternativeNameExtension([
          { type: 'ip', value: '127.0.0.1' },
          { type: 'dns', value: 'localhost' },
        ]),
      ],
    },
    crypto,
  );
  const pkcs8 = await crypto.subtle.exportKey('pkcs8', leafKeys.privateKey);
  return { caPem: ca.toString('pem'), certPem: leaf.toString('pem'), keyPem: x509.PemConverter.encode(pkcs8, 'PRIVATE KEY') };
}

/** Pebble's intermediate with its private key: signs the re-issued leaves and the CRL. */
export interface Issuer {
  certificate: X509.X509Certificate;
  certificatePem: string;
  /** Hex: the leaves' Authority Key Identifier. */
  keyId: string;
  signingKey: webcrypto.CryptoKey;
  algorithm: { name: string; hash: string };
}

export async function loadIssuer(certificatePem: string, keyPem: string): Promise<Issuer> {
  const certificate = new x509.X509Certificate(firstPem(certificatePem));
  const key = createPrivateKey(keyPem);
  const certSpki = Buffer.from(certificate.publicKey.rawData);
  if (!createPublicKey(key).export({ format: 'der', type: 'spki' }).equals(certSpki)) {
    throw new Error("Pebble's intermediate key does not match its intermediate certificate");
  }
  const pkcs8 = key.export({ format: 'der', type: 'pkcs8' });
  const rsa = key.asymmetricKeyType === 'rsa';
  const algorithm = rsa ? { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } : { name: 'ECDSA', hash: 'SHA-256' };
  const importParams = rsa ? algorithm : { name: 'ECDSA', namedCurve: ecCurve(key.asymmetricKeyDetails?.namedCurve) };
  const signingKey = await crypto.subtle.importKey('pkcs8', pkcs8, importParams, false, ['sign']);
  const ski = certificate.getExtension(x509.SubjectKeyIdentifierExtension);
  const keyId = ski?.keyId ?? (await x509.SubjectKeyIdentifierExtension.create(certificate.publicKey, false, crypto)).keyId;
  return { certificate, certificatePem: certificate.toString('pem'), keyId, signingKey, algorithm };
}

export interface ReissuedLeaf {
  pem: string;
  serialNumber: string;
  certId: string;
  identifiers: string[];
  notBefore: Date;
  notAfter: Date;
}

/**
 * Re-signs Pebble's leaf (same key, names, serial and extensions) with the
 * given validity, a CRL distribution point naming the test CA's CRL and,
 * when it runs one, its OCSP responder.
 * Keeping the serial keeps Pebble's "Issued certificate serial" log lines true.
 */
export async function reissueLeaf(
  issuer: Issuer,
  pebbleLeafPem: string,
  validity: { notBefore: number; notAfter: number; crlUrl: string; ocspUrl?: string | undefined },
): Promise<ReissuedLeaf> {
  const original = new x509.X509Certificate(pebbleLeafPem);
  if (original.issuer !== issuer.certificate.subject) {
    throw new Error(`Pebble's leaf names issuer "${original.issuer}", not its intermediate 0 "${issuer.certificate.subject}"`);
  }
  const kept = original.extensions.filter((e) => e.type !== OID_CRL_DISTRIBUTION_POINTS && e.type !== OID_AUTHORITY_INFO_ACCESS);
  const leaf = await x509.X509CertificateGenerator.create(
    {
      serialNumber: original.serialNumber,
      subject: original.subjectName,
      issuer: issuer.certificate.subjectName,
      notBefore: new Date(validity.notBefore),
      notAfter: new Date(validity.notAfter),
      publicKey: original.publicKey,
      signingKey: issuer.signingKey,
      signingAlgorithm: issuer.algorithm,
      extensions: [
        ...kept,
        new x509.CRLDistributionPointsExtension([validity.crlUrl]),
        ...(validity.ocspUrl !== undefined ? [new x509.AuthorityInfoAccessExtension({ ocsp: [validity.ocspUrl] })] : []),
      ],
    },
    crypto,
  );
  const san = leaf.getExtension(x509.SubjectAlternativeNameExtension);
  const identifiers = (san?.names.items ?? []).filter((n) => n.type === 'dns' || n.type === 'ip').map((n) => n.value);
  return {
    pem: leaf.toString('pem'),
    serialNumber: leaf.serialNumber.toLowerCase(),
    certId: certIdOf(leaf),
    identifiers,
    notBefore: leaf.notBefore,
    notAfter: leaf.notAfter,
  };
}

export interface CrlEntry {
  serialNumber: string;
  revokedAt: Date;
  reason: number;
}

/** A CRL signed by the intermediate, with nextUpdate, a CRL number and the issuer's key identifier (RFC 5280 §5.2). */
export async function buildCrl(issuer: Issuer, crl: { thisUpdate: number; nextUpdate: number; number: number; entries: CrlEntry[] }): Promise<Buffer> {
  const generated = await x509.X509CrlGenerator.create(
    {
      issuer: issuer.certificate.subjectName,
      thisUpdate: new Date(crl.thisUpdate),
      nextUpdate: new Date(crl.nextUpdate),
      signingKey: issuer.signingKey,
      signingAlgorithm: issuer.algorithm,
      entries: crl.entries.map((e) => ({ serialNumber: e.serialNumber, revocationDate: e.revokedAt, reason: e.reason })),
      extensions: [
        new x509.AuthorityKeyIdentifierExtension(issuer.keyId),
        new x509.Extension(OID_CRL_NUMBER, false, derInteger(crl.number)),
      ],
    },
    crypto,
  );
  return Buffer.from(generated.rawData);
}

/** RFC 9773 §4.1: base64url(AKI keyIdentifier) "." base64url(serial DER content bytes). */
export function certIdOf(certificate: X509.X509Certificate): string {
  const aki = certificate.getExtension(x509.AuthorityKeyIdentifierExtension);
  if (!aki?.keyId) throw new Error('certificate has no Authority Key Identifier');
  return `${Buffer.from(aki.keyId, 'hex').toString('base64url')}.${serialBytes(certificate.serialNumber).toString('base64url')}`;
}

/** certID of the first certificate in a PEM text, or the text itself when it is a certID already. */
export function certIdOfInput(input: string): string {
  if (!input.includes('-----BEGIN')) return input.trim();
  return certIdOf(new x509.X509Certificate(firstPem(input)));
}

/** The first PEM block of a chain. */
export function firstPem(pem: string): string {
  const match = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(pem);
  if (!match) throw new Error('no PEM certificate found');
  return match[0];
}

/** The PEM blocks of a chain, in order. */
export function pemBlocks(pem: string): string[] {
  return pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}

/** The content bytes of a positive DER INTEGER: minimal, with a 0x00 in front when the top bit is set. */
function serialBytes(hex: string): Buffer {
  let bytes = Buffer.from(hex.length % 2 ? `0${hex}` : hex, 'hex');
  let start = 0;
  while (start < bytes.length - 1 && bytes[start] === 0 && ((bytes[start + 1] as number) & 0x80) === 0) start++;
  bytes = bytes.subarray(start);
  return ((bytes[0] as number) & 0x80) !== 0 ? Buffer.concat([Buffer.from([0]), bytes]) : bytes;
}

function derInteger(value: number): ArrayBuffer {
  const content = serialBytes(value.toString(16));
  return new Uint8Array([0x02, content.length, ...content]).buffer;
}

function ecCurve(name: string | undefined): string {
  if (name === 'prime256v1') return 'P-256';
  if (name === 'secp384r1') return 'P-384';
  if (name === 'secp521r1') return 'P-521';
  throw new Error(`unsupported intermediate key curve ${String(name)}`);
}

function randomSerial(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[0] = (bytes[0] as number) & 0x7f;
  return Buffer.from(bytes).toString('hex');
}
