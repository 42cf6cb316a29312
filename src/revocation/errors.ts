/**
 * The two ways revocation data fails: it could not be fetched, or what came
 * back cannot be trusted. Neither ever makes certkeeper drop a certificate:
 * the one served stays served, and the check is tried again later.
 */
import { CertKeeperError, type CertKeeperErrorOptions } from '../error-base.js';

export type RevocationSource = 'crl' | 'ocsp';

/** The CRL or the OCSP responder could not be fetched (network error, HTTP status, timeout, too large). */
export class RevocationFetchError extends CertKeeperError {
  readonly source: RevocationSource;
  /** The URL the certificate names (a CA's public endpoint, never a secret). */
  readonly url: string;
  constructor(source: RevocationSource, url: string, reason: string, options?: CertKeeperErrorOptions) {
    super('ERR_REVOCATION_FETCH', `Could not fetch the ${source === 'crl' ? 'CRL' : 'OCSP response'} from ${url}: ${reason}`, options);
    this.source = source;
    this.url = url;
  }
}

/** The CRL or OCSP response is malformed, not signed by the certificate's issuer, for another issuer or certificate, or out of date. */
export class RevocationDataError extends CertKeeperError {
  readonly source: RevocationSource;
  readonly url: string;
  constructor(source: RevocationSource, url: string, reason: string, options?: CertKeeperErrorOptions) {
    super('ERR_REVOCATION_INVALID', `Rejected the ${source === 'crl' ? 'CRL' : 'OCSP response'} from ${url}: ${reason}`, options);
    this.source = source;
    this.url = url;
  }
}
