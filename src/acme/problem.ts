/**
 * Turns what acme-client and axios hand back into certkeeper's typed errors.
 *
 * acme-client's high-level methods throw a bare Error holding only the
 * problem's `detail`, losing its type, status and headers; certkeeper therefore
 * sends its requests through acme-client's lower API with no status check
 * and builds the error from the raw response here.
 */
import {
  AcmeProblemError,
  AcmeUnreachableError,
  CertKeeperError,
  type AcmeSubproblem,
} from '../errors.js';
import { MAX_ARI_RETRY_AFTER_MS } from './ari.js';

export const ACME_ERROR = 'urn:ietf:params:acme:error:';

/** The parts of an axios response certkeeper reads. */
export interface RawResponse {
  status: number;
  data: unknown;
  headers: Record<string, unknown>;
}

/** Network-level error codes that mean "the CA could not be reached". */
const UNREACHABLE_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'ECONNABORTED', 'EHOSTUNREACH',
  'ENETUNREACH', 'EPIPE', 'ERR_SOCKET_CONNECTION_TIMEOUT', 'ERR_NETWORK', 'ERR_TLS_CERT_ALTNAME_INVALID',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_HAS_EXPIRED', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'CERT_SIGNATURE_FAILURE', 'EPROTO',
]);

/** TLS verification failures: retrying cannot help, the trust configuration must change. */
const TLS_TRUST_CODES = new Set([
  'ERR_TLS_CERT_ALTNAME_INVALID', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT', 'CERT_HAS_EXPIRED', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'CERT_SIGNATURE_FAILURE',
]);

/** The CA could not be reached; keeps the network error code and whether a retry may help. */
export class AcmeNetworkError extends AcmeUnreachableError {
  readonly networkCode: string | undefined;
  /** False for TLS trust failures, which a retry cannot fix. */
  readonly transient: boolean;
  constructor(message: string, networkCode: string | undefined, cause: unknown) {
    super(message, { cause });
    this.networkCode = networkCode;
    this.transient = networkCode === undefined || !TLS_TRUST_CODES.has(networkCode);
  }
}

/**
 * Milliseconds to wait from a Retry-After header: delta-seconds or an
 * HTTP-date (RFC 9110 10.2.3). Undefined when absent or unparsable; never
 * negative, and never more than a day (the cap ARI uses too): a CA's
 * "come back in ten years" must not silence a name for good.
 */
export function parseRetryAfter(header: unknown, now: number): number | undefined {
  const value = Array.isArray(header) ? header[0] : header;
  let ms: number | undefined;
  if (typeof value === 'number' && Number.isFinite(value)) ms = value * 1000;
  else if (typeof value === 'string' && /^\s*\d+\s*$/.test(value)) ms = Number(value.trim()) * 1000;
  else if (typeof value === 'string' && value.trim() !== '') {
    const at = Date.parse(value.trim());
    if (!Number.isNaN(at)) ms = at - now;
  }
  return ms === undefined ? undefined : Math.min(MAX_ARI_RETRY_AFTER_MS, Math.max(0, ms));
}

function asIdentifier(value: unknown): { type: string; value: string } | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const { type, value: v } = value as Record<string, unknown>;
  return typeof type === 'string' && typeof v === 'string' ? { type, value: v } : undefined;
}

function asSubproblems(value: unknown): AcmeSubproblem[] | undefined {
  if (!Array.isArray(value)) return undefined;
  const out: AcmeSubproblem[] = [];
  for (const item of value) {
    if (typeof item !== 'object' || item === null) continue;
    const { type, detail, identifier } = item as Record<string, unknown>;
    if (typeof type !== 'string') continue;
    const sub: AcmeSubproblem = { type };
    if (typeof detail === 'string') sub.detail = detail;
    const id = asIdentifier(identifier);
    if (id) sub.identifier = id;
    out.push(sub);
  }
  return out;
}

/** Builds an AcmeProblemError from a problem document (RFC 8555 6.7), e.g. a challenge's `error` field. */
export function problemFromDocument(
  doc: unknown,
  extra: { status?: number | undefined; url?: string | undefined; retryAfterMs?: number | undefined; identifier?: { type: string; value: string } | undefined } = {},
): AcmeProblemError {
  const d = typeof doc === 'object' && doc !== null ? (doc as Record<string, unknown>) : {};
  const type = typeof d.type === 'string' ? d.type : 'about:blank';
  const status = typeof d.status === 'number' ? d.status : extra.status;
  return new AcmeProblemError({
    type,
    status,
    detail: typeof d.detail === 'string' ? d.detail : status !== undefined ? `HTTP ${status}` : undefined,
    subproblems: asSubproblems(d.subproblems),
    identifier: asIdentifier(d.identifier) ?? extra.identifier,
    retryAfterMs: extra.retryAfterMs,
    url: extra.url,
  });
}

/** Builds an AcmeProblemError from an error response (status >= 400). */
export function problemFromResponse(resp: RawResponse, url: string | undefined, now: number): AcmeProblemError {
  const data = typeof resp.data === 'string' ? tryJson(resp.data) : resp.data;
  return problemFromDocument(data, {
    status: resp.status,
    url,
    retryAfterMs: parseRetryAfter(resp.headers['retry-after'], now),
  });
}

function tryJson(text: string): unknown {
  if (text.trim() === '') return {}; // e.g. a HEAD newNonce answered 503
  try {
    return JSON.parse(text);
  } catch {
    return { detail: text.slice(0, 200) };
  }
}

function errorCode(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string') return code;
  return errorCode((error as { cause?: unknown }).cause);
}

/** True for errors from the network or TLS layer (no HTTP response at all). */
export function isNetworkError(error: unknown): boolean {
  const code = errorCode(error);
  if (code !== undefined && UNREACHABLE_CODES.has(code)) return true;
  return code !== undefined && /^(ERR_TLS_|ERR_SSL_|CERT_|UNABLE_TO_)/.test(code);
}

/** Maps a low-level network failure to AcmeNetworkError, naming the host but nothing secret. */
export function unreachableFromError(error: unknown, url: string | undefined): AcmeNetworkError {
  const code = errorCode(error);
  const where = url ? safeOrigin(url) : 'the ACME server';
  const reason = code ?? (error instanceof Error ? error.message : 'unknown error');
  return new AcmeNetworkError(`Could not reach ${where}: ${reason}`, code, error);
}

function safeOrigin(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}`;
  } catch {
    return 'the ACME server';
  }
}

/**
 * Last-resort mapping for anything thrown during an ACME call: typed errors
 * pass through, network errors become AcmeUnreachableError, an axios error
 * carrying a response becomes AcmeProblemError; anything else is returned as is.
 */
export function toAcmeError(error: unknown, url: string | undefined, now: number): unknown {
  if (error instanceof CertKeeperError) return error;
  const resp = (error as { response?: RawResponse } | null)?.response;
  if (resp && typeof resp.status === 'number') return problemFromResponse(resp, url, now);
  if (isNetworkError(error)) return unreachableFromError(error, url);
  return error;
}

/** True when `error` is an ACME problem of the given short type (e.g. `badNonce`). */
export function isProblem(error: unknown, shortType: string): error is AcmeProblemError {
  return error instanceof AcmeProblemError && error.type === `${ACME_ERROR}${shortType}`;
}
