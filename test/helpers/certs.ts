/**
 * Self-signed certificate + key pairs for storage tests (ECDSA P-256 through
 * WebCrypto and @peculiar/x509; no external binary needed).
 */
import { randomBytes, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

export interface TestCertificate {
  certPem: string;
  keyPem: string;
}

export async function selfSignedCertificate(names: string[], validDays = 30): Promise<TestCertificate> {
  const keys = await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']);
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    // Positive, non-zero serial: first byte forced into 0x01..0x7f.
    serialNumber: `${((randomBytes(1)[0] ?? 0) % 0x7f + 1).toString(16).padStart(2, '0')}${randomBytes(15).toString('hex')}`,
    name: `CN=${names[0] ?? 'test'}`,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + validDays * 86_400_000),
    signingAlgorithm: ALG,
    keys,
    extensions: [new x509.SubjectAlternativeNameExtension(names.map((value) => ({ type: 'dns' as const, value })))],
  });
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  return { certPem: cert.toString('pem') + '\n', keyPem: x509.PemConverter.encode(pkcs8, 'PRIVATE KEY') + '\n' };
}
