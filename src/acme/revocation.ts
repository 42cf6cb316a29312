/**
 * Certificate revocation (RFC 8555 section 7.6), signed by the account that
 * obtained the certificate, with an RFC 5280 reason code.
 */
import { InvalidOptionError, throwIfAborted } from '../errors.js';
import type { AcmeConnection } from './connection.js';
import type { AcmeDirectory } from './directories.js';


/** RFC 5280 reason codes a subscriber may give: unspecified, keyCompromise, affiliationChanged, superseded, cessationOfOperation, privilegeWithdrawn. */
export type RevocationReason = 0 | 1 | 3 | 4 | 5 | 9;
export const REVOCATION_REASONS: readonly RevocationReason[] = [0, 1, 3, 4, 5, 9];

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/;

export interface RevocationRequest {
  /** The leaf's DER, base64url. */
  certificate: string;
  reason: RevocationReason;
}

/** Checks the reason and takes the leaf (the first certificate) of `certificatePem`, before any request is made. */
export function revocationRequest(certificatePem: string, reason: RevocationReason): RevocationRequest {
  if (!REVOCATION_REASONS.includes(reason)) throw new InvalidOptionError('reason', `must be one of ${REVOCATION_REASONS.join(', ')}`);
  const leaf = typeof certificatePem === 'string' ? PEM_CERT.exec(certificatePem)?.[0] : undefined;
  if (!leaf) throw new InvalidOptionError('certificatePem', 'must hold a PEM certificate');
  const body = leaf.replace(/-----(BEGIN|END) CERTIFICATE-----|\s+/g, '');
  return { certificate: Buffer.from(body, 'base64').toString('base64url'), reason };
}

/** Sends the revocation, signed by the connection's account. */
export async function revoke(conn: AcmeConnection, directory: AcmeDirectory, request: RevocationRequest, signal: AbortSignal | undefined): Promise<void> {
  throwIfAborted(signal);
  if (!directory.revokeCert) throw new InvalidOptionError('revoke', 'the CA directory has no revokeCert resource');
  await conn.post(directory.revokeCert, { certificate: request.certificate, reason: request.reason }, { ok: [200], what: 'revokeCert', signal });
}
