import type { Identifier } from '../names.js';
import type { KeyType } from '../kinds.js';
export { KEY_TYPES, type KeyType } from '../kinds.js';

export interface IssueRequest {
  /** Normalised identifiers, the first being the certificate's primary name. */
  identifiers: Identifier[];
  /** PEM (or DER) certificate signing request made from a fresh key by the caller. */
  csr: Buffer;
  /** Certificate being renewed, for ARI `replaces` (RFC 9773). */
  replacesCertificatePem?: string | undefined;
  signal?: AbortSignal | undefined;
}

export interface IssuedCertificate {
  /** Leaf first, then intermediates, PEM. */
  chainPem: string;
  /** Free-form facts the issuer wants kept in the sidecar (e.g. ACME order URL, account URL). */
  issuerData?: Record<string, string> | undefined;
}

/** ARI (RFC 9773) answer, already validated. */
export interface RenewalInfo {
  windowStart: number;
  windowEnd: number;
  explanationUrl?: string | undefined;
  /** Epoch ms after which the info should be fetched again. */
  retryAfter: number;
}

export type RevocationReason = 0 | 1 | 3 | 4 | 5 | 9;

/** An issuer turns a CSR into a certificate chain: an ACME CA, the internal CA, or anything else. */
export interface Issuer {
  /** Stable, filesystem-safe key naming this issuer in storage paths (e.g. `acme-v02.api.letsencrypt.org-directory`). */
  readonly key: string;
  issue(request: IssueRequest): Promise<IssuedCertificate>;
  revoke?(certificatePem: string, reason?: RevocationReason, signal?: AbortSignal): Promise<void>;
  /** ARI lookup; undefined when the issuer does not support it. */
  renewalInfo?(certificatePem: string, signal?: AbortSignal): Promise<RenewalInfo | undefined>;
  close?(): Promise<void>;
}
