/**
 * PKCS#12 (.p12/.pfx) export of a certificate chain and its key, for
 * `certkeeper export --format p12` and for servers (IIS, Java keystores) that
 * want one password-protected file. node:crypto can read keys and
 * certificates but cannot write PKCS#12, so node-forge does the ASN.1, PBES2
 * and MAC work.
 *
 * forge's own PKCS#12 writer (pkcs12.toPkcs12Asn1) takes forge key and
 * certificate objects, and forge can parse neither EC private keys nor
 * certificates with EC public keys. So the PFX is assembled here from DER
 * bytes with forge's ASN.1 builder, which works the same for RSA and ECDSA:
 *   - the key: PKCS#8 from node:crypto, encrypted by forge as a
 *     pkcs8ShroudedKeyBag (PBES2, PBKDF2-HMAC-SHA256, AES-256-CBC);
 *   - the certificates: certBags holding the DER as is (certificates are
 *     public, so they are not encrypted, which also keeps the file readable
 *     without the legacy RC2/3DES ciphers OpenSSL 3 no longer enables);
 *   - integrity: an HMAC-SHA256 MacData keyed by the RFC 7292 appendix B KDF.
 */
import { createHash, createPrivateKey, randomBytes, X509Certificate, type KeyObject } from 'node:crypto';
import type Forge from 'node-forge';
import { lazyModule, lazyObject } from '../lazy.js';

const forge = lazyModule<typeof Forge>('node-forge');
import { CertificateInvalidError, InvalidOptionError } from '../errors.js';
import { DEFAULT_PKCS12_ITERATIONS } from '../defaults.js';
export { DEFAULT_PKCS12_ITERATIONS };

export const MIN_PKCS12_ITERATIONS = 1_000;
export const MAX_PKCS12_ITERATIONS = 1_000_000;

export interface Pkcs12Options {
  /** PEM chain, leaf first. */
  certPem: string;
  /** PEM private key of the leaf (PKCS#8, PKCS#1 or SEC1; not encrypted). */
  keyPem: string;
  /** Password protecting the key and the file's integrity; must not be empty. */
  password: string;
  /** Name tools show for the key and leaf (e.g. the certificate's primary name). */
  friendlyName?: string | undefined;
  iterations?: number | undefined;
}

const OID = {
  data: '1.2.840.113549.1.7.1',
  certBag: '1.2.840.113549.1.12.10.1.3',
  pkcs8ShroudedKeyBag: '1.2.840.113549.1.12.10.1.2',
  x509Certificate: '1.2.840.113549.1.9.22.1',
  friendlyName: '1.2.840.113549.1.9.20',
  localKeyId: '1.2.840.113549.1.9.21',
  sha256: '2.16.840.1.101.3.4.2.1',
} as const;

const asn1 = lazyObject(() => forge.asn1);
type Asn1 = Forge.asn1.Asn1;

// forge has the RFC 7292 appendix B KDF (pki.pbe.generatePkcs12Key) but its type definitions omit it.
type Pkcs12Kdf = (
  password: string,
  salt: Forge.util.ByteStringBuffer,
  id: number,
  iterations: number,
  length: number,
  md: Forge.md.MessageDigest,
) => Forge.util.ByteStringBuffer;
const pkcs12Kdf: Pkcs12Kdf = (...args) => (forge.pki as unknown as { pbe: { generatePkcs12Key: Pkcs12Kdf } }).pbe.generatePkcs12Key(...args);

/** Builds a password-protected PKCS#12 file holding the key and the whole chain. */
export function toPkcs12(options: Pkcs12Options): Buffer {
  if (typeof options !== 'object' || options === null) throw new InvalidOptionError('options', 'must be an object');
  const { password } = options;
  if (typeof password !== 'string' || password.length === 0) {
    throw new InvalidOptionError('password', 'must be a non-empty string');
  }
  const friendlyName = options.friendlyName;
  if (friendlyName !== undefined && (typeof friendlyName !== 'string' || friendlyName.length === 0 || friendlyName.length > 256)) {
    throw new InvalidOptionError('friendlyName', 'must be a string of 1-256 characters');
  }
  const iterations = options.iterations ?? DEFAULT_PKCS12_ITERATIONS;
  if (!Number.isSafeInteger(iterations) || iterations < MIN_PKCS12_ITERATIONS || iterations > MAX_PKCS12_ITERATIONS) {
    throw new InvalidOptionError('iterations', `must be an integer from ${MIN_PKCS12_ITERATIONS} to ${MAX_PKCS12_ITERATIONS}`);
  }

  const certs = parseChain(options.certPem);
  const key = parseKey(options.keyPem);
  const leaf = certs[0]!;
  if (!leaf.checkPrivateKey(key)) {
    throw new CertificateInvalidError('The private key does not belong to the first certificate of the chain');
  }

  // Conventionally the SHA-1 of the leaf certificate; it pairs the key bag with its certificate bag.
  const localKeyId = createHash('sha1').update(leaf.raw).digest();
  const pairedAttributes = bagAttributes(localKeyId, friendlyName);

  const certBags = certs.map((cert, index) =>
    safeBag(
      OID.certBag,
      seq([oid(OID.x509Certificate), explicit0(octets(cert.raw))]),
      index === 0 ? pairedAttributes : undefined,
    ),
  );

  const pkcs8 = key.export({ type: 'pkcs8', format: 'der' });
  const encryptedKey = forge.pki.encryptPrivateKeyInfo(asn1.fromDer(binary(pkcs8)), forge.util.encodeUtf8(password), {
    algorithm: 'aes256',
    prfAlgorithm: 'sha256',
    count: iterations,
    saltSize: 16,
  } as Forge.pki.EncryptionOptions);
  const keyBag = safeBag(OID.pkcs8ShroudedKeyBag, encryptedKey, pairedAttributes);

  const authenticatedSafe = seq([dataContentInfo(seq(certBags)), dataContentInfo(seq([keyBag]))]);
  const authSafeDer = asn1.toDer(authenticatedSafe).getBytes();

  const pfx = seq([
    integer(3),
    seq([oid(OID.data), explicit0(asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OCTETSTRING, false, authSafeDer))]),
    macData(authSafeDer, password, iterations),
  ]);
  return Buffer.from(asn1.toDer(pfx).getBytes(), 'binary');
}

function parseChain(certPem: unknown): X509Certificate[] {
  if (typeof certPem !== 'string') throw new InvalidOptionError('certPem', 'must be a PEM string');
  const blocks = certPem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new InvalidOptionError('certPem', 'holds no PEM certificate');
  return blocks.map((block, index) => {
    try {
      return new X509Certificate(block);
    } catch (error) {
      throw new CertificateInvalidError(`Certificate ${index + 1} of the chain could not be parsed`, { cause: error });
    }
  });
}

function parseKey(keyPem: unknown): KeyObject {
  if (typeof keyPem !== 'string') throw new InvalidOptionError('keyPem', 'must be a PEM string');
  try {
    return createPrivateKey({ key: keyPem, format: 'pem' });
  } catch (error) {
    // The message says nothing of the key's content.
    throw new CertificateInvalidError('The private key could not be read (expected an unencrypted PEM key)', { cause: error });
  }
}

/** MacData with HMAC-SHA256, its key from the PKCS#12 KDF (id 3) over the BMPString password. */
function macData(authSafeDer: string, password: string, iterations: number): Asn1 {
  const salt = binary(randomBytes(16));
  const macKey = pkcs12Kdf(password, new forge.util.ByteStringBuffer(salt), 3, iterations, 32, forge.md.sha256.create());
  const hmac = forge.hmac.create();
  hmac.start('sha256', macKey.getBytes());
  hmac.update(authSafeDer);
  const digest = hmac.digest().getBytes();
  return seq([
    seq([seq([oid(OID.sha256), asn1.create(asn1.Class.UNIVERSAL, asn1.Type.NULL, false, '')]), octetsBinary(digest)]),
    octetsBinary(salt),
    integer(iterations),
  ]);
}

function bagAttributes(localKeyId: Buffer, friendlyName: string | undefined): Asn1[] {
  const attributes = [seq([oid(OID.localKeyId), set([octets(localKeyId)])])];
  if (friendlyName !== undefined) {
    // forge writes a BMPSTRING value as UTF-16 code units itself.
    attributes.push(seq([oid(OID.friendlyName), set([asn1.create(asn1.Class.UNIVERSAL, asn1.Type.BMPSTRING, false, friendlyName)])]));
  }
  return attributes;
}

function safeBag(bagId: string, value: Asn1, attributes: Asn1[] | undefined): Asn1 {
  const parts = [oid(bagId), explicit0(value)];
  if (attributes) parts.push(set(attributes));
  return seq(parts);
}

function dataContentInfo(safeContents: Asn1): Asn1 {
  const der = asn1.toDer(safeContents).getBytes();
  return seq([oid(OID.data), explicit0(asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OCTETSTRING, false, der))]);
}

function seq(items: Asn1[]): Asn1 {
  return asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, items);
}

function set(items: Asn1[]): Asn1 {
  return asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SET, true, items);
}

function explicit0(inner: Asn1): Asn1 {
  return asn1.create(asn1.Class.CONTEXT_SPECIFIC, 0, true, [inner]);
}

function oid(value: string): Asn1 {
  return asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OID, false, asn1.oidToDer(value).getBytes());
}

function integer(value: number): Asn1 {
  return asn1.create(asn1.Class.UNIVERSAL, asn1.Type.INTEGER, false, asn1.integerToDer(value).getBytes());
}

function octets(bytes: Uint8Array): Asn1 {
  return octetsBinary(binary(bytes));
}

function octetsBinary(bytes: string): Asn1 {
  return asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OCTETSTRING, false, bytes);
}

/** forge works on "binary strings" (one char per byte). */
function binary(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('binary');
}
