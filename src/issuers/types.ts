import type { X509Certificate } from 'node:crypto';
import type { Identifier } from '../names.js';
import type { RenewalInfo } from '../acme/ari.js';
export type { RenewalInfo } from '../acme/ari.js';
import type { RevocationReason } from '../acme/revocation.js';
export type { RevocationReason } from '../acme/revocation.js';
export { KEY_TYPES, type KeyType } from '../kinds.js';

export interface IssueRequest {
  /** Normalised identifiers, the first being the certificate's primary name. */
  identifiers: Identifier[];
  /** PEM (or DER) certificate signing request made from a fresh key by the caller. */
  csr: Buffer;
  /** Certificate being renewed, for ARI `replaces` (RFC 9773). */
  replacesCertificatePem?: string | undefined;
  /** ACME profile preference of this call (manageSync/manageAsync/obtain settings); wins over the issuer's own. */
  profile?: readonly string[] | undefined;
  /** Profile the renewed certificate was asked for under: asked again when neither the call nor the issuer names one. */
  keptProfile?: string | undefined;
  /**
   * Awaited right before the first request that creates anything at the CA (an ACME newOrder); when it rejects,
   * nothing is ordered and issue() rejects with its error. The caller's own checks run meanwhile (the folder probe).
   */
  beforeOrder?: (() => Promise<void>) | undefined;
  signal?: AbortSignal | undefined;
}

export interface IssuedCertificate {
  /** Leaf first, then intermediates, PEM. */
  chainPem: string;
  /** chainPem's certificates, already parsed by the issuer (in the same order): the caller need not parse them again. */
  certificates?: readonly X509Certificate[] | undefined;
  /** Free-form facts the issuer wants kept in the sidecar (e.g. ACME order URL, account URL). */
  issuerData?: Record<string, string> | undefined;
  /** ACME profile the certificate was issued under (as the CA echoed it, else as asked). */
  profile?: string | undefined;
  /** The order named the profile (it was not just the CA's default): renewals ask for it again. */
  profileRequested?: boolean | undefined;
}

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
