/** Public types of the test CA (`startTestCa` in `certkeeper/testing`). */
import type { Clock } from '../../clock.js';
import type { Logger } from '../../logger.js';

/** Where the real Pebble listens; the test CA forwards every ACME request there, so challenges are validated for real. */
export interface TestCaPebble {
  /** Pebble's directory, e.g. `https://127.0.0.1:14000/dir`. */
  directoryUrl: string;
  /** Pebble's management port, e.g. `https://127.0.0.1:15000` (serves the intermediate and its key). */
  managementUrl: string;
  /** PEM of the CA that signed Pebble's own HTTPS certificate (both ports use it). */
  caCertificate: string;
}

export interface TestCaProfile {
  /** Lifetime of the certificates issued under this profile (notAfter - notBefore). */
  lifetimeMs: number;
  /** Shown in the directory's `meta.profiles`. */
  description?: string;
}

export interface TestCaOptions {
  pebble: TestCaPebble;
  /** Profiles offered in `meta.profiles`; default classic (90 days), tlsserver (45 days), shortlived (160 hours). */
  profiles?: Record<string, TestCaProfile>;
  /** The profile of an order that names none; default `classic` when offered, else the first profile. */
  defaultProfile?: string;
  /**
   * Profiles under which an order may name an IP address (RFC 8738); an order with one under any other profile
   * is refused with `rejectedIdentifier`, as Let's Encrypt does outside `shortlived`. Default: every profile.
   */
  ipProfiles?: string[];
  /** Dates the certificates, renewal windows and CRLs; default the system clock. */
  clock?: Clock;
  /** Retry-After (seconds) sent with every renewalInfo answer; default 6 hours, as Let's Encrypt. */
  renewalInfoRetryAfterSeconds?: number;
  /** nextUpdate - thisUpdate of the CRL and of OCSP answers; default 1 hour. */
  crlLifetimeMs?: number;
  /** Run an OCSP responder and name it in the certificates (Authority Information Access); default false, as Let's Encrypt. */
  ocsp?: boolean;
  /**
   * Challenge types (e.g. `dns-persist-01`, in Let's Encrypt's staging) listed in every pending authorization
   * before Pebble's own, with a URL and no token; nobody validates them. Tests that a client ignores types it does not know.
   */
  extraChallengeTypes?: string[];
  logger?: Logger;
}

/**
 * Endpoint names for counts, faults and Retry-After. The top-level ones are the
 * directory's names (RFC 8555 §7.1.1, RFC 9773); the others are the objects
 * the CA hands out URLs for.
 */
export type TestCaEndpoint =
  | 'directory'
  | 'newNonce'
  | 'newAccount'
  | 'newOrder'
  | 'revokeCert'
  | 'keyChange'
  | 'renewalInfo'
  | 'account'
  | 'order'
  | 'authz'
  | 'challenge'
  | 'finalize'
  | 'certificate'
  | 'crl'
  | 'ocsp'
  | 'other';

export interface TestCaFault {
  endpoint: TestCaEndpoint;
  /** HTTP status of the answer, 400-599. */
  status: number;
  /** Retry-After header: seconds, or a date. */
  retryAfter?: number | Date;
  /** ACME problem type, short (`rateLimited`) or full URN; default rateLimited for 429, serverInternal otherwise. */
  type?: string;
  detail?: string;
  /** How many requests the fault answers before the endpoint works again; default 1, Infinity for every one. */
  times?: number;
}

export interface RenewalWindow {
  start: Date | number;
  end: Date | number;
  /** Sent as `explanationURL`. */
  explanationUrl?: string;
}

/** A certificate the test CA issued (re-signed with the profile's lifetime). */
export interface TestCaCertificate {
  /** RFC 9773 certificate identifier. */
  certId: string;
  /** Hex, lower case. */
  serialNumber: string;
  profile: string;
  /** DNS names and IP addresses, as in the order. */
  identifiers: string[];
  notBefore: Date;
  notAfter: Date;
  /** The leaf alone. */
  certificatePem: string;
  renewalWindow: { start: Date; end: Date; explanationUrl?: string };
  /** certID named by the order's `replaces`. */
  replaces?: string;
  /** certID of the certificate whose finalized order replaced this one. */
  replacedBy?: string;
  revoked?: { at: Date; reason: number };
  /** renewalInfo requests for this certificate so far (faulted ones excluded), to check that a fleet polls each certificate once. */
  renewalInfoRequests: number;
}

export interface TestCa extends AsyncDisposable {
  /** Give this to the ACME client. */
  readonly directoryUrl: string;
  /** PEM of the CA of the test CA's own HTTPS certificate: the client must trust it (never disable verification). */
  readonly caCertificate: string;
  /** Pebble's issuing root (trust anchor of the issued certificates) and intermediate, PEM. */
  readonly rootCertificate: string;
  readonly intermediateCertificate: string;
  /** Plain-HTTP URL of the CRL, named in every issued certificate's CRL distribution point. */
  readonly crlUrl: string;
  /** Plain-HTTP URL of the OCSP responder (POST, or GET with the base64 request in the path); undefined unless the `ocsp` option is true. */
  readonly ocspUrl: string | undefined;
  /** Every certificate issued so far, oldest first. */
  certificates(): TestCaCertificate[];
  /** The certificate (PEM, leaf first, or its certID) as the test CA knows it; throws InvalidOptionError when it did not issue it. */
  certificate(certificate: string): TestCaCertificate;
  /** Sets the ARI window of one certificate. */
  setRenewalWindow(certificate: string, window: RenewalWindow): void;
  /** Moves the ARI window of every certificate issued so far into the past at once, as a CA about to revoke en masse does. */
  revocationDrill(options?: { explanationUrl?: string }): void;
  /** Revokes a certificate (RFC 5280 reason code, default 0): it appears in the next CRL. */
  revoke(certificate: string, reason?: number): void;
  /** Serves the CRL with a broken signature from now on (true) or a good one again (false), to test that clients reject it. */
  tamperCrl(tampered: boolean): void;
  /** The next `times` requests to the endpoint get this error answer instead of the real one. */
  injectFault(fault: TestCaFault): void;
  clearFaults(): void;
  /** Sends `Retry-After: seconds` with every successful answer of the endpoint (undefined: none). */
  setRetryAfter(endpoint: TestCaEndpoint, seconds: number | undefined): void;
  /** How many requests reached the endpoint (faulted ones included); all endpoints without an argument. */
  requests(endpoint?: TestCaEndpoint): number;
  close(): Promise<void>;
}
