/**
 * Test certificates generated in-process (ECDSA P-256 through WebCrypto and
 * @peculiar/x509): a CA, leaves issued by it for server or client auth, and
 * self-signed leaves. Fast enough to make dozens per test file.
 */
import { randomBytes, webcrypto } from 'node:crypto';
import { isIP } from 'node:net';
import * as x509 from '@peculiar/x509';

const crypto = webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0];
x509.cryptoProvider.set(crypto);

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY = 24 * 60 * 60 * 1000;

export interface TestCa {
  certPem: string;
  keyPem: string;
  cert: x509.X509Certificate;
  keys: webcrypto.CryptoKeyPair;
}

export interface TestLeaf {
  /** The leaf followed by the issuing CA (when CA-signed): a chain in serving order. */
  chainPem: string;
  leafPem: string;
  keyPem: string;
  /** Upper-case hex, as node:crypto X509Certificate.serialNumber prints it. */
  serialNumber: string;
}

export interface LeafOptions {
  names: string[];
  notBefore?: Date;
  notAfter?: Date;
  /** 'server' (default) or 'client' extended key usage. */
  usage?: 'server' | 'client';
}

async function exportKeyPem(key: webcrypto.CryptoKey): Promise<string> {
  const pkcs8 = await webcrypto.subtle.exportKey("pkcs8", key);
  return x509.PemConverter.encode(pkcs8, 'PRIVATE KEY');
}

function serial(): string {
  // Positive, 16 bytes, upper-case hex.
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] ?? 0) & 0x7f | 0x10;
  return bytes.toString('hex').toUpperCase();
}

export async function createTestCa(commonName = 'certkeeper test CA'): Promise<TestCa> {
  const keys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=${commonName}`,
    notBefore: new Date(Date.now() - DAY),
    notAfter: new Date(Date.now() + 30 * DAY),
    signingAlgorithm: ALG,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: cert.toString('pem'), keyPem: await exportKeyPem(keys.privateKey), cert, keys };
}

function sanEntries(names: string[]): x509.JsonGeneralName[] {
  return names.map((n) => (isIP(n) ? { type: 'ip', value: n } : { type: 'dns', value: n }));
}

/** A leaf signed by `ca` (or self-signed when `ca` is undefined). */
export async function createTestLeaf(ca: TestCa | undefined, options: LeafOptions): Promise<TestLeaf> {
  const keys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const serialNumber = serial();
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
    new x509.ExtendedKeyUsageExtension([options.usage === 'client' ? x509.ExtendedKeyUsage.clientAuth : x509.ExtendedKeyUsage.serverAuth]),
    new x509.SubjectAlternativeNameExtension(sanEntries(options.names)),
  ];
  const common = {
    serialNumber,
    notBefore: options.notBefore ?? new Date(Date.now() - DAY),
    notAfter: options.notAfter ?? new Date(Date.now() + 10 * DAY),
    signingAlgorithm: ALG,
    extensions,
  };
  const subject = `CN=${options.names[0] ?? 'test'}`;
  const cert = ca
    ? await x509.X509CertificateGenerator.create({
        ...common,
        subject,
        issuer: ca.cert.subject,
        publicKey: keys.publicKey,
        signingKey: ca.keys.privateKey,
      })
    : await x509.X509CertificateGenerator.createSelfSigned({ ...common, name: subject, keys });
  const leafPem = cert.toString('pem');
  return {
    leafPem,
    chainPem: ca ? `${leafPem}\n${ca.certPem}\n` : `${leafPem}\n`,
    keyPem: await exportKeyPem(keys.privateKey),
    serialNumber,
  };
}
