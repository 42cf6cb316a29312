/** Small certificate chains for unit tests (leaf <- intermediate <- root, root not included). */
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };

export async function makeChain(rootCn: string, leafName: string): Promise<string> {
  x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
  const gen = () => webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']) as Promise<webcrypto.CryptoKeyPair>;
  const [rootKeys, interKeys, leafKeys] = await Promise.all([gen(), gen(), gen()]);
  const notBefore = new Date(Date.now() - 60_000);
  const notAfter = new Date(Date.now() + 86_400_000);
  const inter = await x509.X509CertificateGenerator.create({
    serialNumber: '0a',
    subject: `CN=Intermediate of ${rootCn}`,
    issuer: `CN=${rootCn}`,
    notBefore,
    notAfter,
    publicKey: interKeys.publicKey,
    signingKey: rootKeys.privateKey,
    signingAlgorithm: alg,
    extensions: [new x509.BasicConstraintsExtension(true, 0, true)],
  });
  const leaf = await x509.X509CertificateGenerator.create({
    serialNumber: '0b',
    subject: `CN=${leafName}`,
    issuer: inter.subject,
    notBefore,
    notAfter,
    publicKey: leafKeys.publicKey,
    signingKey: interKeys.privateKey,
    signingAlgorithm: alg,
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: leafName }])],
  });
  return `${leaf.toString('pem')}\n${inter.toString('pem')}\n`;
}
