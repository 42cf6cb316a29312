/**
 * ACME Renewal Information (RFC 9773): the certificate identifier, the GET of
 * `renewalInfo/<certID>`, and validation of the answer. Scheduling decisions
 * live in src/renewal/renewal-policy.ts.
 */
import type * as X509 from '@peculiar/x509';
import { lazyModule } from '../lazy.js';

const x509 = lazyModule<typeof X509>('@peculiar/x509');
import { systemClock, type Clock } from '../clock.js';
import { AbortedError, AcmeProblemError, AcmeUnreachableError, CertificateInvalidError } from '../errors.js';
import { DEFAULT_ARI_FETCH_TIMEOUT_MS, DEFAULT_ARI_RETRY_AFTER_MS } from '../defaults.js';
export { DEFAULT_ARI_RETRY_AFTER_MS, DEFAULT_ARI_FETCH_TIMEOUT_MS };

const MINUTE = 60_000;
/** RFC 9773 leaves the Retry-After range to clients; these bounds keep one bad header from hammering the CA or going silent. */
export const MIN_ARI_RETRY_AFTER_MS = MINUTE;
export const MAX_ARI_RETRY_AFTER_MS = 24 * 60 * MINUTE;

/**
 * The RFC 9773 §4.1 certificate identifier: base64url(Authority Key
 * Identifier keyIdentifier) "." base64url(serial number DER content bytes),
 * unpadded. Takes the leaf of a PEM chain (or DER). Used both in the
 * renewalInfo URL and as a new order's `replaces`.
 */
export function certId(certificate: string | Uint8Array): string {
  const { der, cert } = parseLeaf(certificate);
  return certIdOf(der, cert);
}

function certIdOf(der: Buffer, cert: X509.X509Certificate): string {
  const aki = cert.getExtension(x509.AuthorityKeyIdentifierExtension);
  if (!aki?.keyId) {
    throw new CertificateInvalidError('The certificate has no Authority Key Identifier keyIdentifier; ARI cannot name it');
  }
  return `${Buffer.from(aki.keyId, 'hex').toString('base64url')}.${serialContentBytes(der).toString('base64url')}`;
}

/** ARI (RFC 9773) answer, already validated. */
export interface RenewalInfo {
  windowStart: number;
  windowEnd: number;
  explanationUrl?: string | undefined;
  /** Epoch ms after which the info should be fetched again. */
  retryAfter: number;
  /** The same as a delay from the answer: for a caller whose clock is not the issuer's. */
  retryAfterMs?: number | undefined;
}

/**
 * Validates a renewalInfo response. A missing, malformed or inverted
 * (end <= start) window gives undefined: the caller falls back to the
 * lifetime rule and asks again after `ariRetryAt(...)`.
 */
export function parseRenewalInfo(body: unknown, retryAfterHeader: string | null | undefined, now: number): RenewalInfo | undefined {
  if (typeof body !== 'object' || body === null) return undefined;
  const window = (body as Record<string, unknown>)['suggestedWindow'];
  if (typeof window !== 'object' || window === null) return undefined;
  const start = parseRfc3339((window as Record<string, unknown>)['start']);
  const end = parseRfc3339((window as Record<string, unknown>)['end']);
  if (start === undefined || end === undefined || end <= start) return undefined;
  const retryAfter = ariRetryAt(retryAfterHeader, now);
  const info: RenewalInfo = { windowStart: start, windowEnd: end, retryAfter, retryAfterMs: retryAfter - now };
  const explanation = (body as Record<string, unknown>)['explanationURL'];
  if (typeof explanation === 'string' && isHttpUrl(explanation)) info.explanationUrl = explanation;
  return info;
}

/**
 * When to fetch renewal info again (epoch ms): the Retry-After header
 * (delay-seconds or HTTP-date) clamped to [1 minute, 1 day], 6 hours when
 * absent or unreadable.
 */
export function ariRetryAt(retryAfterHeader: string | null | undefined, now: number): number {
  const value = retryAfterHeader?.trim();
  let delay = DEFAULT_ARI_RETRY_AFTER_MS;
  if (value) {
    if (/^\d+$/.test(value)) {
      delay = Number(value) * 1000;
    } else {
      const at = parseHttpDate(value);
      if (at !== undefined) delay = at - now;
    }
  }
  return now + Math.min(MAX_ARI_RETRY_AFTER_MS, Math.max(MIN_ARI_RETRY_AFTER_MS, delay));
}

export interface FetchRenewalInfoOptions {
  /** Defaults to the global fetch. */
  fetchImpl?: typeof fetch | undefined;
  signal?: AbortSignal | undefined;
  clock?: Clock | undefined;
  timeoutMs?: number | undefined;
}

/**
 * GETs `<renewalInfoBaseUrl>/<certID>` (a plain GET, not POST-as-GET, per
 * RFC 9773 §4.1). Resolves with the validated info, or undefined when the
 * answer holds no usable window or the certificate has expired (then
 * without any request). Throws AcmeProblemError for an HTTP error
 * status, AcmeUnreachableError when the CA cannot be reached, AbortedError
 * when aborted.
 */
export async function fetchRenewalInfo(
  renewalInfoBaseUrl: string,
  certificatePem: string | Uint8Array,
  options: FetchRenewalInfoOptions = {},
): Promise<RenewalInfo | undefined> {
  const fetchImpl = options.fetchImpl ?? fetch;
  const clock = options.clock ?? systemClock;
  const { der, cert } = parseLeaf(certificatePem);
  // RFC 9773 §4.2: nothing to schedule for an expired certificate, so no request.
  if (clock.now() >= cert.notAfter.getTime()) return undefined;
  const url = `${renewalInfoBaseUrl.replace(/\/+$/, '')}/${certIdOf(der, cert)}`;
  const signals = [AbortSignal.timeout(options.timeoutMs ?? DEFAULT_ARI_FETCH_TIMEOUT_MS)];
  if (options.signal) signals.push(options.signal);
  const signal = AbortSignal.any(signals);

  let response: Response;
  let text: string;
  try {
    response = await fetchImpl(url, { method: 'GET', headers: { accept: 'application/json' }, signal });
    text = await response.text();
  } catch (error) {
    if (options.signal?.aborted) throw new AbortedError('The renewalInfo request was aborted', { cause: options.signal.reason });
    throw new AcmeUnreachableError(`renewalInfo request to ${url} failed: ${(error as Error)?.message ?? String(error)}`, { cause: error });
  }
  const body = parseJson(text);
  if (!response.ok) {
    const problem = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
    const retryAfter = response.headers.get('retry-after');
    throw new AcmeProblemError({
      type: typeof problem['type'] === 'string' ? problem['type'] : 'about:blank',
      status: response.status,
      detail: typeof problem['detail'] === 'string' ? problem['detail'] : `renewalInfo answered HTTP ${response.status}`,
      url,
      retryAfterMs: retryAfter ? ariRetryAt(retryAfter, clock.now()) - clock.now() : undefined,
    });
  }
  return parseRenewalInfo(body, response.headers.get('retry-after'), clock.now());
}

export interface AriCertificateState {
  /** Epoch ms. */
  notAfter: number;
  /** True once a successor has been issued (RFC 9773 §4.2: stop asking). */
  replaced?: boolean | undefined;
  /** Epoch ms before which the CA asked not to be asked again. */
  ariRetryAfter?: number | undefined;
}

/** Whether renewal info is worth asking for now: never for an expired or replaced certificate, never before Retry-After. */
export function shouldQueryAri(state: AriCertificateState, now: number): boolean {
  if (now >= state.notAfter) return false;
  if (state.replaced) return false;
  if (state.ariRetryAfter !== undefined && now < state.ariRetryAfter) return false;
  return true;
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

function parseRfc3339(value: unknown): number | undefined {
  if (typeof value !== 'string' || !RFC3339.test(value)) return undefined;
  const time = Date.parse(value.toUpperCase());
  return Number.isFinite(time) ? time : undefined;
}

// RFC 9110 §5.6.7: IMF-fixdate, and the obsolete RFC 850 and asctime forms recipients must accept.
const IMF_FIXDATE = /^[A-Za-z]{3}, \d{2} [A-Za-z]{3} \d{4} \d{2}:\d{2}:\d{2} GMT$/;
const RFC850_DATE = /^[A-Za-z]{6,9}, \d{2}-[A-Za-z]{3}-\d{2} \d{2}:\d{2}:\d{2} GMT$/;
const ASCTIME_DATE = /^[A-Za-z]{3} [A-Za-z]{3} [ \d]\d \d{2}:\d{2}:\d{2} \d{4}$/;

/** Epoch ms of an HTTP-date, or undefined; Date.parse alone accepts far too much (e.g. "-5" as a year). */
function parseHttpDate(value: string): number | undefined {
  let text: string;
  if (IMF_FIXDATE.test(value) || RFC850_DATE.test(value)) text = value;
  else if (ASCTIME_DATE.test(value)) text = `${value} GMT`;
  else return undefined;
  const time = Date.parse(text);
  return Number.isFinite(time) ? time : undefined;
}

function isHttpUrl(value: string): boolean {
  try {
    const url = new URL(value);
    return url.protocol === 'https:' || url.protocol === 'http:';
  } catch {
    return false;
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function parseLeaf(certificate: string | Uint8Array): { der: Buffer; cert: X509.X509Certificate } {
  const der = leafDer(certificate);
  try {
    return { der, cert: new x509.X509Certificate(der) };
  } catch (error) {
    throw new CertificateInvalidError('Cannot parse the certificate to compute its ARI identifier', { cause: error });
  }
}

const PEM_BLOCK = /-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/;

function leafDer(certificate: string | Uint8Array): Buffer {
  if (typeof certificate !== 'string') {
    const bytes = Buffer.from(certificate);
    // PEM passed as bytes (e.g. readFile without an encoding).
    if (bytes.subarray(0, 11).toString('latin1') === '-----BEGIN ') return leafDer(bytes.toString('latin1'));
    return bytes;
  }
  const match = PEM_BLOCK.exec(certificate);
  if (!match?.[1]) throw new CertificateInvalidError('No PEM certificate found');
  return Buffer.from(match[1].replace(/\s+/g, ''), 'base64');
}

/**
 * The serial number's DER content bytes exactly as encoded (leading zero
 * included), read from the TBSCertificate: Certificate ::= SEQUENCE {
 * tbsCertificate SEQUENCE { [0] version OPTIONAL, serialNumber INTEGER, ... } }.
 */
function serialContentBytes(der: Buffer): Buffer {
  const certificate = readTlv(der, 0);
  const tbs = readTlv(der, certificate.contentStart);
  let field = readTlv(der, tbs.contentStart);
  if (field.tag === 0xa0) field = readTlv(der, field.end);
  if (certificate.tag !== 0x30 || tbs.tag !== 0x30 || field.tag !== 0x02 || field.end === field.contentStart) {
    throw new CertificateInvalidError('Malformed certificate: serial number not found');
  }
  return der.subarray(field.contentStart, field.end);
}

interface Tlv {
  tag: number;
  contentStart: number;
  end: number;
}

function readTlv(buf: Buffer, offset: number): Tlv {
  const malformed = (): never => {
    throw new CertificateInvalidError('Malformed certificate DER');
  };
  const tag = buf[offset] ?? malformed();
  const first = buf[offset + 1] ?? malformed();
  let length = first;
  let contentStart = offset + 2;
  if (first & 0x80) {
    const count = first & 0x7f;
    if (count === 0 || count > 4) malformed();
    length = 0;
    for (let i = 0; i < count; i++) length = length * 256 + (buf[offset + 2 + i] ?? malformed());
    contentStart += count;
  }
  const end = contentStart + length;
  if (end > buf.length) malformed();
  return { tag, contentStart, end };
}
