/** The `revocationCheck` option: how served certificates are checked against their CA's CRL and OCSP responder. */
import { InvalidOptionError } from '../errors.js';
import { durationMs, nonNegativeInteger, optionalBoolean, positiveInteger } from '../validate.js';
import {
  DEFAULT_REVOCATION_CHECK_INTERVAL_MS,
  DEFAULT_REVOCATION_FETCH_RETRIES,
  DEFAULT_REVOCATION_FETCH_TIMEOUT_MS,
  DEFAULT_REVOCATION_MAX_CRL_BYTES,
  DEFAULT_REVOCATION_RETRY_DELAY_MS,
} from '../defaults.js';

export interface RevocationCheckOptions {
  /** How often each served certificate is checked (default 1 hour; sooner when a cached CRL or OCSP answer runs out). */
  intervalMs?: number;
  /** Per attempt at a CRL or responder (default 10 s). */
  timeoutMs?: number;
  /** Retries after a failed attempt (default 2), waiting retryDelayMs (default 1 s), then doubling. */
  retries?: number;
  retryDelayMs?: number;
  /** Check the CRL the certificate names (default true). */
  crl?: boolean;
  /** Ask the OCSP responder the certificate names, if any (default true). */
  ocsp?: boolean;
  /** Staple the cached good OCSP answer in handshakes (default true; only for certificates naming a responder). */
  stapling?: boolean;
  /** Largest CRL accepted, bytes (default 16 MiB). */
  maxCrlBytes?: number;
}

export interface ResolvedRevocationCheck {
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly retries: number;
  readonly retryDelayMs: number;
  readonly crl: boolean;
  readonly ocsp: boolean;
  readonly stapling: boolean;
  readonly maxCrlBytes: number;
}

const KNOWN = new Set(['intervalMs', 'timeoutMs', 'retries', 'retryDelayMs', 'crl', 'ocsp', 'stapling', 'maxCrlBytes']);

export function resolveRevocationCheck(value: RevocationCheckOptions | false | undefined): ResolvedRevocationCheck | false {
  if (value === false) return false;
  if (value !== undefined && (typeof value !== 'object' || value === null)) throw new InvalidOptionError('revocationCheck', 'must be an object or false');
  const options = value ?? {};
  for (const key of Object.keys(options)) {
    if (!KNOWN.has(key)) throw new InvalidOptionError(`revocationCheck.${key}`, `is not an option (known: ${[...KNOWN].join(', ')})`);
  }
  return Object.freeze({
    intervalMs: durationMs(options.intervalMs, 'revocationCheck.intervalMs', false, true) ?? DEFAULT_REVOCATION_CHECK_INTERVAL_MS,
    timeoutMs: durationMs(options.timeoutMs, 'revocationCheck.timeoutMs', false, true) ?? DEFAULT_REVOCATION_FETCH_TIMEOUT_MS,
    retries: nonNegativeInteger(options.retries, 'revocationCheck.retries') ?? DEFAULT_REVOCATION_FETCH_RETRIES,
    retryDelayMs: durationMs(options.retryDelayMs, 'revocationCheck.retryDelayMs', true, true) ?? DEFAULT_REVOCATION_RETRY_DELAY_MS,
    crl: optionalBoolean(options.crl, 'revocationCheck.crl') ?? true,
    ocsp: optionalBoolean(options.ocsp, 'revocationCheck.ocsp') ?? true,
    stapling: optionalBoolean(options.stapling, 'revocationCheck.stapling') ?? true,
    maxCrlBytes: positiveInteger(options.maxCrlBytes, 'revocationCheck.maxCrlBytes') ?? DEFAULT_REVOCATION_MAX_CRL_BYTES,
  });
}
