/**
 * Signing one leaf certificate for the internal CA: checks the CSR (parses,
 * proof of possession, key type and size) and signs a serverAuth leaf for
 * identifiers the caller has validated. A pure function of its input, so it
 * runs on a worker thread as well as on the caller's (see src/cpu/).
 */
import { createPublicKey, webcrypto } from 'node:crypto';
import type * as X509 from '@peculiar/x509';
import { lazyModule } from '../lazy.js';

const x509 = lazyModule<typeof X509>('@peculiar/x509');
import { CertificateInvalidError } from '../errors.js';
import type { Identifier } from '../names.js';

const MIN_RSA_BITS = 2048;
/** Longest value X.509 allows in a common name. */
export const MAX_COMMON_NAME_LENGTH = 64;
export const SIGNING_ALGORITHM = { name: 'ECDSA', hash: 'SHA-256' } as const;
// @peculiar/x509 types its crypto parameter with the DOM Crypto type; Node's webcrypto is that object. Declared
// with Node's type so the shipped .d.ts files never load @peculiar/x509's, which need lib "dom" (a Node project has none).
export const cryptoProvider: webcrypto.Crypto = webcrypto;

export interface LeafSigningRequest {
  /** PEM or DER CSR, as the issuer received it. */
  csr: Uint8Array | string;
  /** Already validated: they become the SANs (the CSR's own names are ignored). */
  identifiers: Identifier[];
  /** Hex. */
  serialNumber: string;
  notBefore: number;
  notAfter: number;
  /** DER of the issuing (intermediate) certificate: its subject and key identifier. */
  issuerCertificate: Uint8Array;
  /** The issuing certificate's private key (ECDSA P-256). */
  signingKey: webcrypto.CryptoKey;
}

/** Returns the leaf's DER. Throws CertificateInvalidError for a bad CSR. */
export async function signLeaf(request: LeafSigningRequest): Promise<Uint8Array> {
  const csr = await parseAndVerifyCsr(request.csr);
  const keyType = checkLeafKey(csr);
  const issuer = new x509.X509Certificate(request.issuerCertificate);
  const usages =
    keyType === 'rsa' ? x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment : x509.KeyUsageFlags.digitalSignature;
  const primary = (request.identifiers[0] as Identifier).value;
  const leaf = await x509.X509CertificateGenerator.create(
    {
      serialNumber: request.serialNumber,
      // The SANs carry the names; the CN is only for humans and old tools, and is capped at 64 characters.
      subject: primary.length <= MAX_COMMON_NAME_LENGTH ? [{ CN: [primary] }] : [],
      issuer: issuer.subjectName,
      notBefore: new Date(request.notBefore),
      notAfter: new Date(request.notAfter),
      publicKey: csr.publicKey,
      signingKey: request.signingKey,
      signingAlgorithm: SIGNING_ALGORITHM,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(usages, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
        new x509.SubjectAlternativeNameExtension(
          request.identifiers.map((id) => ({ type: id.type === 'ip' ? 'ip' : 'dns', value: id.value })),
          primary.length > MAX_COMMON_NAME_LENGTH,
        ),
        await x509.SubjectKeyIdentifierExtension.create(csr.publicKey, false, cryptoProvider),
        await x509.AuthorityKeyIdentifierExtension.create(issuer.publicKey, false, cryptoProvider),
      ],
    },
    cryptoProvider,
  );
  return new Uint8Array(leaf.rawData);
}

async function parseAndVerifyCsr(input: unknown): Promise<X509.Pkcs10CertificateRequest> {
  if (!(input instanceof Uint8Array) && typeof input !== 'string') {
    throw new CertificateInvalidError('The CSR must be a PEM or DER Buffer');
  }
  const buffer = Buffer.from(input);
  const text = buffer.toString('latin1');
  let csr: X509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(text.includes('-----BEGIN') ? text : buffer);
  } catch (error) {
    throw new CertificateInvalidError('The CSR could not be parsed', { cause: error });
  }
  let valid: boolean;
  try {
    valid = await csr.verify(cryptoProvider);
  } catch (error) {
    throw new CertificateInvalidError('The CSR signature could not be checked (unsupported key or algorithm)', { cause: error });
  }
  // Proof of possession: only the holder of the key may have it certified.
  if (!valid) throw new CertificateInvalidError('The CSR signature does not verify');
  return csr;
}

/** Key types TLS clients accept in a server certificate, at a safe size. */
function checkLeafKey(csr: X509.Pkcs10CertificateRequest): 'rsa' | 'ec' {
  const key = createPublicKey({ key: Buffer.from(csr.publicKey.rawData), format: 'der', type: 'spki' });
  const type = key.asymmetricKeyType;
  if (type === 'rsa') {
    if ((key.asymmetricKeyDetails?.modulusLength ?? 0) < MIN_RSA_BITS) {
      throw new CertificateInvalidError(`The CSR's RSA key is shorter than ${MIN_RSA_BITS} bits`);
    }
    return type;
  }
  if (type === 'ec') return type;
  throw new CertificateInvalidError(`The CSR's key type ${String(type)} is not supported (use RSA or ECDSA)`);
}
