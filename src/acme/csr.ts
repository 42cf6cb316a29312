/**
 * Certificate keys and CSRs. The key is always fresh and never the account key.
 *
 * The PKCS#10 request (RFC 2986) is written as DER here on node:crypto: a
 * subject CN, the subjectAltName and keyUsage extensions, signed by the new
 * key. A schema library (@peculiar/x509) cost ~0.1 s to load and a few ms of
 * CPU per certificate on the thread that answers handshakes.
 */
import { generateKeyPair, sign, type KeyObject } from 'node:crypto';
import { isIP } from 'node:net';
import { promisify } from 'node:util';
import { bitString, explicit, objectIdentifier, octetString, sequence, tlv } from '../revocation/der.js';
import { InvalidOptionError } from '../errors.js';
import { KEY_TYPES, type KeyType } from '../kinds.js';
import type { Identifier } from '../names.js';
import { DEFAULT_KEY_TYPE } from '../defaults.js';
export { DEFAULT_KEY_TYPE };

const generateKeyPairAsync = promisify(generateKeyPair);

export interface KeyAndCsr {
  /** PKCS#8 PEM private key of the certificate. */
  keyPem: string;
  /** The same private key, parsed (for checks that would otherwise parse `keyPem` again). */
  key: KeyObject;
  /** PEM certificate signing request. */
  csr: Buffer;
}

/** keyUsage bits (RFC 5280 4.2.1.3) as a DER BIT STRING: digitalSignature, and keyEncipherment for RSA. */
const DIGITAL_SIGNATURE = Buffer.from([0x03, 0x02, 0x07, 0x80]);
const DIGITAL_SIGNATURE_KEY_ENCIPHERMENT = Buffer.from([0x03, 0x02, 0x05, 0xa0]);
const NULL = Buffer.from([0x05, 0x00]);

interface KeyAlgorithm {
  generate: () => Promise<{ privateKey: KeyObject; publicKey: KeyObject }>;
  hash: string;
  /** signatureAlgorithm of the request. */
  signatureAlgorithm: Buffer;
  usages: Buffer;
}

const ec = (namedCurve: string, hash: string, oid: string): KeyAlgorithm => ({
  generate: () => generateKeyPairAsync('ec', { namedCurve }),
  hash,
  signatureAlgorithm: sequence(objectIdentifier(oid)),
  usages: DIGITAL_SIGNATURE,
});
const rsa = (modulusLength: number): KeyAlgorithm => ({
  generate: () => generateKeyPairAsync('rsa', { modulusLength, publicExponent: 0x10001 }),
  hash: 'sha256',
  // sha256WithRSAEncryption, with the NULL parameters RFC 4055 asks for.
  signatureAlgorithm: sequence(objectIdentifier('1.2.840.113549.1.1.11'), NULL),
  usages: DIGITAL_SIGNATURE_KEY_ENCIPHERMENT,
});

const ALGORITHMS: Record<KeyType, KeyAlgorithm> = {
  'ecdsa-p256': ec('P-256', 'sha256', '1.2.840.10045.4.3.2'),
  'ecdsa-p384': ec('P-384', 'sha384', '1.2.840.10045.4.3.3'),
  rsa2048: rsa(2048),
  rsa3072: rsa(3072),
  rsa4096: rsa(4096),
};

function algorithmFor(keyType: KeyType): KeyAlgorithm {
  const algorithm = KEY_TYPES.includes(keyType) ? ALGORITHMS[keyType] : undefined;
  if (!algorithm) throw new InvalidOptionError('keyType', `must be one of ${KEY_TYPES.join(', ')}`);
  return algorithm;
}

const pkcs8Pem = (key: KeyObject): string => key.export({ type: 'pkcs8', format: 'pem' }).toString();

/** A new private key of the given type, PKCS#8 PEM. */
export async function createPrivateKeyPem(keyType: KeyType = DEFAULT_KEY_TYPE): Promise<string> {
  return pkcs8Pem((await algorithmFor(keyType).generate()).privateKey);
}

/** An IP address as the 4 or 16 octets of an iPAddress GeneralName. */
export function ipOctets(ip: string): Buffer {
  if (isIP(ip) === 4) return Buffer.from(ip.split('.').map(Number));
  if (isIP(ip) !== 6) throw new InvalidOptionError('identifiers', `${ip} is not an IP address`);
  let text = ip.replace(/%.*$/, '');
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text)?.[1];
  if (v4 !== undefined) {
    const [a = 0, b = 0, c = 0, d = 0] = v4.split('.').map(Number);
    text = `${text.slice(0, -v4.length)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const left = head === '' ? [] : head.split(':');
  const right = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? left : [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  const out = Buffer.alloc(16);
  groups.forEach((group, i) => out.writeUInt16BE(parseInt(group, 16), i * 2));
  return out;
}

function extension(oid: string, value: Buffer): Buffer {
  return sequence(objectIdentifier(oid), octetString(value));
}

/** The DER CertificationRequest for `identifiers`, signed by `privateKey`. */
function certificationRequest(identifiers: readonly Identifier[], algorithm: KeyAlgorithm, privateKey: KeyObject, publicKey: KeyObject): Buffer {
  const first = identifiers[0] as Identifier;
  const commonName = first.type === 'dns' && first.value.length <= 64 ? first.value : undefined;
  // Name: SEQUENCE OF RDN (SET OF AttributeTypeAndValue); CN as UTF8String, as before.
  const subject = commonName === undefined ? sequence() : sequence(tlv(0x31, sequence(objectIdentifier('2.5.4.3'), tlv(0x0c, Buffer.from(commonName, 'utf8')))));
  const altNames = sequence(
    ...identifiers.map((id) => (isIP(id.value) ? tlv(0x87, ipOctets(id.value)) : tlv(0x82, Buffer.from(id.value, 'ascii')))),
  );
  const extensions = sequence(extension('2.5.29.15', algorithm.usages), extension('2.5.29.17', altNames));
  // attributes [0] IMPLICIT SET OF Attribute: one extensionRequest (PKCS#9).
  const attributes = explicit(0, sequence(objectIdentifier('1.2.840.113549.1.9.14'), tlv(0x31, extensions)));
  const info = sequence(Buffer.from([0x02, 0x01, 0x00]), subject, publicKey.export({ type: 'spki', format: 'der' }), attributes);
  const signature = sign(algorithm.hash, info, privateKey);
  return sequence(info, algorithm.signatureAlgorithm, bitString(signature));
}

function pem(label: string, der: Buffer): string {
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

/**
 * A fresh key and a CSR for the identifiers (the first is the common name when
 * it fits in one: a DNS name of at most 64 characters). The CSR asks for the
 * names as subjectAltName entries and for the key usages TLS servers need.
 */
export async function createKeyAndCsr(identifiers: readonly Identifier[], keyType: KeyType = DEFAULT_KEY_TYPE): Promise<KeyAndCsr> {
  if (identifiers.length === 0) throw new InvalidOptionError('identifiers', 'must name at least one identifier');
  const algorithm = algorithmFor(keyType);
  const { privateKey, publicKey } = await algorithm.generate();
  const der = certificationRequest(identifiers, algorithm, privateKey, publicKey);
  return { keyPem: pkcs8Pem(privateKey), key: privateKey, csr: Buffer.from(pem('CERTIFICATE REQUEST', der)) };
}
