/**
 * The TLS-ALPN-01 challenge certificate (RFC 8737 section 3): self-signed,
 * naming the identifier and carrying the key authorization's digest in the
 * critical acmeIdentifier extension. acme-client builds it; this is the one
 * place outside the protocol code that needs it.
 */
import { generateKeyPairSync } from 'node:crypto';
import { acme } from './acme-client.js';
import type { Identifier } from '../names.js';


export interface AlpnChallengeCertificate {
  /** Throwaway key of this one certificate (PEM). */
  keyPem: string;
  /** The challenge certificate (PEM); no secret. */
  certificatePem: string;
}

/** Creates the self-signed challenge certificate for one identifier and key authorization. */
export async function createAlpnChallengeCertificate(identifier: Identifier, keyAuthorization: string): Promise<AlpnChallengeCertificate> {
  // A throwaway P-256 key: much cheaper than acme-client's RSA default, used for one handshake.
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const keyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  const authz = { identifier: { type: identifier.type, value: identifier.value } } as Parameters<typeof acme.crypto.createAlpnCertificate>[0];
  const [, cert] = await acme.crypto.createAlpnCertificate(authz, keyAuthorization, keyPem);
  return { keyPem, certificatePem: cert.toString() };
}
