/**
 * Reading the flattened JWS of ACME requests (RFC 8555 §6.2). The test CA
 * reads payloads to learn profiles and `replaces`; it verifies signatures
 * only for the requests it answers itself (revokeCert), since Pebble checks
 * every request it receives.
 */
import { createPublicKey, verify, type JsonWebKey, type KeyObject } from 'node:crypto';

export interface DecodedJws {
  protectedHeader: Record<string, unknown>;
  /** Parsed payload; undefined for POST-as-GET (empty payload). */
  payload: unknown;
  signingInput: string;
  signature: Buffer;
}

export function decodeJws(body: string): DecodedJws | undefined {
  try {
    const jws = JSON.parse(body) as { protected?: unknown; payload?: unknown; signature?: unknown };
    if (typeof jws.protected !== 'string' || typeof jws.payload !== 'string' || typeof jws.signature !== 'string') return undefined;
    const protectedHeader = JSON.parse(Buffer.from(jws.protected, 'base64url').toString('utf8')) as Record<string, unknown>;
    const payload: unknown = jws.payload === '' ? undefined : JSON.parse(Buffer.from(jws.payload, 'base64url').toString('utf8'));
    return { protectedHeader, payload, signingInput: `${jws.protected}.${jws.payload}`, signature: Buffer.from(jws.signature, 'base64url') };
  } catch {
    return undefined;
  }
}

const HASHES: Record<string, string> = { RS256: 'sha256', ES256: 'sha256', ES384: 'sha384', ES512: 'sha512' };

/** The public key of a JWK, or undefined when it is not one. */
export function keyOfJwk(jwk: unknown): KeyObject | undefined {
  if (typeof jwk !== 'object' || jwk === null) return undefined;
  try {
    return createPublicKey({ key: jwk as JsonWebKey, format: 'jwk' });
  } catch {
    return undefined;
  }
}

/** True when the JWS signature verifies with `key` under the algorithm its header names. */
export function signatureVerifies(jws: DecodedJws, key: KeyObject): boolean {
  const hash = HASHES[String(jws.protectedHeader['alg'])];
  if (!hash) return false;
  try {
    const ec = key.asymmetricKeyType === 'ec';
    return verify(hash, Buffer.from(jws.signingInput), ec ? { key, dsaEncoding: 'ieee-p1363' } : key, jws.signature);
  } catch {
    return false;
  }
}

/** Same public key (compared as SPKI DER). */
export function sameKey(a: KeyObject, b: KeyObject): boolean {
  return a.export({ format: 'der', type: 'spki' }).equals(b.export({ format: 'der', type: 'spki' }));
}

/** Path of the account URL a request names as its kid (URLs differ in host only when clients use another name for the front). */
export function accountPathOf(jws: DecodedJws): string | undefined {
  const kid = jws.protectedHeader['kid'];
  return typeof kid === 'string' && URL.canParse(kid) ? new URL(kid).pathname : undefined;
}
