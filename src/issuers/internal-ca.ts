/**
 * The internal CA's certificates: creating a root and an intermediate,
 * reading a stored key-and-certificate bundle back, and the checks that tie
 * them together. No storage and no policy here: internal.ts decides when.
 */
import { createPrivateKey, createPublicKey, randomBytes, webcrypto, X509Certificate as NodeX509Certificate } from 'node:crypto';
import type * as X509 from '@peculiar/x509';
import { CertificateInvalidError } from '../errors.js';
import { lazyModule } from '../lazy.js';
import { cryptoProvider, SIGNING_ALGORITHM } from './leaf-signing.js';
import { CLOCK_SKEW_BACKDATE_MS } from './clock-skew.js';
export { CLOCK_SKEW_BACKDATE_MS };

const x509 = lazyModule<typeof X509>('@peculiar/x509');


/** A CA certificate with its signing key. */
export interface CaPair {
  certPem: string;
  cert: X509.X509Certificate;
  key: webcrypto.CryptoKey;
  /** Storage value holding key and certificate together. */
  bundle: string;
}

const EC_ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256' } as const;

/** A new self-signed root CA of the CA `name`, valid for `lifetimeMs` from `now`. */
export async function createRootCa(name: string, lifetimeMs: number, now: number): Promise<CaPair> {
  const keys = await generateCaKeys();
  const year = new Date(now).getUTCFullYear();
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: randomSerial(),
      name: [{ CN: [`certkeeper ${name} root CA ${year}`] }, { O: ['certkeeper'] }],
      notBefore: new Date(now - CLOCK_SKEW_BACKDATE_MS),
      notAfter: new Date(now + lifetimeMs),
      keys,
      signingAlgorithm: SIGNING_ALGORITHM,
      extensions: [
        new x509.BasicConstraintsExtension(true, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, cryptoProvider),
      ],
    },
    cryptoProvider,
  );
  return makePair(cert, keys.privateKey);
}

/** A new intermediate signed by `root`, never outliving it. */
export async function createIntermediateCa(name: string, root: CaPair, lifetimeMs: number, now: number): Promise<CaPair> {
  const keys = await generateCaKeys();
  const notAfter = Math.min(now + lifetimeMs, root.cert.notAfter.getTime());
  const cert = await x509.X509CertificateGenerator.create(
    {
      serialNumber: randomSerial(),
      subject: [{ CN: [`certkeeper ${name} intermediate CA`] }, { O: ['certkeeper'] }],
      issuer: root.cert.subjectName,
      notBefore: new Date(now - CLOCK_SKEW_BACKDATE_MS),
      notAfter: new Date(notAfter),
      publicKey: keys.publicKey,
      signingKey: root.key,
      signingAlgorithm: SIGNING_ALGORITHM,
      extensions: [
        // pathLen 0: the intermediate signs leaves only.
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(
          x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature,
          true,
        ),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, cryptoProvider),
        await x509.AuthorityKeyIdentifierExtension.create(root.cert.publicKey, false, cryptoProvider),
      ],
    },
    cryptoProvider,
  );
  return makePair(cert, keys.privateKey);
}

/** A crash between writing a new root and its intermediate leaves an intermediate of the old root: detected here. */
export function issuedBy(intermediate: CaPair, root: CaPair): boolean {
  const child = new NodeX509Certificate(intermediate.certPem);
  const parent = new NodeX509Certificate(root.certPem);
  return child.checkIssued(parent) && child.verify(parent.publicKey);
}

async function generateCaKeys(): Promise<webcrypto.CryptoKeyPair> {
  // Extractable, since the private key is stored.
  return (await webcrypto.subtle.generateKey(EC_ALGORITHM, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
}

async function makePair(cert: X509.X509Certificate, privateKey: webcrypto.CryptoKey): Promise<CaPair> {
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', privateKey));
  const keyPem = pemBlock('PRIVATE KEY', pkcs8);
  const certPem = toPem(cert);
  return { cert, certPem, key: privateKey, bundle: `${keyPem}${certPem}` };
}

const PEM_BLOCK = /-----BEGIN ([A-Z ]+)-----\r?\n([A-Za-z0-9+/=\r\n]+?)-----END \1-----/g;

/** Reads a `.key` bundle (PKCS#8 key + certificate) and checks that the two belong together. */
export async function parseBundle(text: string, storageKey: string): Promise<CaPair> {
  const blocks = new Map<string, Buffer>();
  for (const match of text.matchAll(PEM_BLOCK)) {
    blocks.set(match[1]!, Buffer.from(match[2]!.replace(/\s+/g, ''), 'base64'));
  }
  const keyDer = blocks.get('PRIVATE KEY');
  const certDer = blocks.get('CERTIFICATE');
  if (!keyDer || !certDer) {
    throw new CertificateInvalidError(`${storageKey} must hold a PKCS#8 private key and a certificate`);
  }
  let cert: X509.X509Certificate;
  let key: webcrypto.CryptoKey;
  try {
    cert = new x509.X509Certificate(certDer);
    key = await webcrypto.subtle.importKey('pkcs8', keyDer, EC_ALGORITHM, false, ['sign']);
  } catch (error) {
    throw new CertificateInvalidError(`${storageKey} does not hold a readable ECDSA P-256 key and certificate`, { cause: error });
  }
  const keySpki = createPublicKey(createPrivateKey({ key: keyDer, format: 'der', type: 'pkcs8' })).export({ type: 'spki', format: 'der' });
  if (!keySpki.equals(Buffer.from(cert.publicKey.rawData))) {
    throw new CertificateInvalidError(`${storageKey}: the private key does not match the certificate`);
  }
  const certPem = toPem(cert);
  return { cert, certPem, key, bundle: text };
}

/** 128 random bits with a non-zero first byte, so every serial is 16 bytes long; @peculiar/x509 keeps the DER INTEGER positive. */
export function randomSerial(): string {
  for (;;) {
    const bytes = randomBytes(16);
    if (bytes[0] !== 0) return bytes.toString('hex');
  }
}

function toPem(cert: X509.X509Certificate): string {
  return pemBlock('CERTIFICATE', Buffer.from(cert.rawData));
}

export function pemBlock(label: string, der: Buffer): string {
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}
