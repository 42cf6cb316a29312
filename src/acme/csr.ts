/**
 * Certificate keys and CSRs. The key is always fresh and never the account key.
 *
 * The key pair is generated with WebCrypto and signs the CSR as it is: no
 * PEM round trip (acme-client's createCsr parses the PEM key four times,
 * about 1.3 ms of main-thread CPU per certificate, which a mass renewal pays
 * on the thread that answers handshakes).
 */
import { KeyObject, webcrypto } from 'node:crypto';
import { isIP } from 'node:net';
import type * as X509 from '@peculiar/x509';
import { lazyModule } from '../lazy.js';

const x509 = lazyModule<typeof X509>('@peculiar/x509');
import { InvalidOptionError } from '../errors.js';
import { KEY_TYPES, type KeyType } from '../kinds.js';
import type { Identifier } from '../names.js';
import { DEFAULT_KEY_TYPE } from '../defaults.js';
export { DEFAULT_KEY_TYPE };


export interface KeyAndCsr {
  /** PKCS#8 PEM private key of the certificate. */
  keyPem: string;
  /** The same private key, parsed (for checks that would otherwise parse `keyPem` again). */
  key: KeyObject;
  /** PEM certificate signing request. */
  csr: Buffer;
}

interface KeyAlgorithm {
  generate: webcrypto.EcKeyGenParams | webcrypto.RsaHashedKeyGenParams;
  sign: webcrypto.EcdsaParams | webcrypto.Algorithm;
  usages: number;
}

const RSA_EXPONENT = new Uint8Array([1, 0, 1]);
const rsa = (bits: number): KeyAlgorithm => ({
  generate: { name: 'RSASSA-PKCS1-v1_5', modulusLength: bits, publicExponent: RSA_EXPONENT, hash: 'SHA-256' },
  sign: { name: 'RSASSA-PKCS1-v1_5' },
  usages: x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment,
});
// Built on first use: the usage flags come from @peculiar/x509, which is loaded lazily.
let algorithms: Record<KeyType, KeyAlgorithm> | undefined;
const algorithmTable = (): Record<KeyType, KeyAlgorithm> => (algorithms ??= {
  'ecdsa-p256': { generate: { name: 'ECDSA', namedCurve: 'P-256' }, sign: { name: 'ECDSA', hash: 'SHA-256' }, usages: x509.KeyUsageFlags.digitalSignature },
  'ecdsa-p384': { generate: { name: 'ECDSA', namedCurve: 'P-384' }, sign: { name: 'ECDSA', hash: 'SHA-384' }, usages: x509.KeyUsageFlags.digitalSignature },
  rsa2048: rsa(2048),
  rsa3072: rsa(3072),
  rsa4096: rsa(4096),
});

// @peculiar/x509 types its crypto parameter with the DOM Crypto type; Node's webcrypto is that object.
const cryptoProvider = webcrypto as unknown as NonNullable<Parameters<typeof x509.Pkcs10CertificateRequestGenerator.create>[1]>;

function algorithmFor(keyType: KeyType): KeyAlgorithm {
  const algorithm = KEY_TYPES.includes(keyType) ? algorithmTable()[keyType] : undefined;
  if (!algorithm) throw new InvalidOptionError('keyType', `must be one of ${KEY_TYPES.join(', ')}`);
  return algorithm;
}

async function generateKeys(algorithm: KeyAlgorithm): Promise<webcrypto.CryptoKeyPair> {
  // Extractable: the private key is stored.
  return (await webcrypto.subtle.generateKey(algorithm.generate, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
}

async function pkcs8Pem(privateKey: webcrypto.CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', privateKey));
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN PRIVATE KEY-----\n${lines.join('\n')}\n-----END PRIVATE KEY-----\n`;
}

/** A new private key of the given type, PKCS#8 PEM. */
export async function createPrivateKeyPem(keyType: KeyType = DEFAULT_KEY_TYPE): Promise<string> {
  return pkcs8Pem((await generateKeys(algorithmFor(keyType))).privateKey);
}

/**
 * A fresh key and a CSR for the identifiers (the first is the common name when
 * it fits in one: a DNS name of at most 64 characters). The CSR asks for the
 * names as subjectAltName entries and for the key usages TLS servers need.
 */
export async function createKeyAndCsr(identifiers: readonly Identifier[], keyType: KeyType = DEFAULT_KEY_TYPE): Promise<KeyAndCsr> {
  if (identifiers.length === 0) throw new InvalidOptionError('identifiers', 'must name at least one identifier');
  const algorithm = algorithmFor(keyType);
  const keys = await generateKeys(algorithm);
  const first = identifiers[0] as Identifier;
  const commonName = first.type === 'dns' && first.value.length <= 64 ? first.value : undefined;
  const request = await x509.Pkcs10CertificateRequestGenerator.create(
    {
      keys,
      signingAlgorithm: algorithm.sign,
      name: commonName !== undefined ? [{ CN: [commonName] }] : [],
      extensions: [
        new x509.KeyUsagesExtension(algorithm.usages),
        new x509.SubjectAlternativeNameExtension(identifiers.map((id) => ({ type: isIP(id.value) ? 'ip' : 'dns', value: id.value }))),
      ],
    },
    cryptoProvider,
  );
  return {
    keyPem: await pkcs8Pem(keys.privateKey),
    key: KeyObject.from(keys.privateKey),
    csr: Buffer.from(request.toString('pem')),
  };
}
