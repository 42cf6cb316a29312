/** Checks the signature of a CRL or an OCSP response against the issuer's key, with node:crypto. */
import { verify, type KeyObject } from 'node:crypto';
import { children, oidText, type Tlv } from './der.js';

/** Signature algorithm OIDs of RFC 5758 / RFC 4055 / RFC 8410 and the hash each uses (null: the algorithm has its own). */
const HASH_OF: Record<string, string | null> = {
  '1.2.840.10045.4.3.2': 'sha256',
  '1.2.840.10045.4.3.3': 'sha384',
  '1.2.840.10045.4.3.4': 'sha512',
  '1.2.840.113549.1.1.11': 'sha256',
  '1.2.840.113549.1.1.12': 'sha384',
  '1.2.840.113549.1.1.13': 'sha512',
  '1.3.101.112': null,
};

/**
 * True when `signature` (a BIT STRING element) over `signed` (the DER of the
 * signed part) verifies with `key` under `algorithm` (an AlgorithmIdentifier
 * element). An algorithm not listed (SHA-1, RSA-PSS...) does not verify.
 */
export function signatureVerifies(signed: Buffer, algorithm: Tlv | undefined, signature: Tlv | undefined, key: KeyObject): boolean {
  if (algorithm?.tag !== 0x30 || signature?.tag !== 0x03 || signature.content[0] !== 0) return false;
  const oid = children(algorithm.content)[0];
  if (oid?.tag !== 0x06) return false;
  const name = oidText(oid.content);
  if (!(name in HASH_OF)) return false;
  try {
    // X.509 ECDSA signatures are DER SEQUENCE { r, s }: node's default encoding.
    return verify(HASH_OF[name] ?? null, signed, key, signature.content.subarray(1));
  } catch {
    return false;
  }
}
