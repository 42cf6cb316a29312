/** The ACME directory as the CA serves it over trusted HTTPS, and the local clock against its Date header. */
import https from 'node:https';
import tls from 'node:tls';
import { DEFAULT_DOCTOR_TIMEOUT_MS } from '../defaults.js';
import type { CheckResult } from './result.js';

/** Clock offsets up to this are normal (the Date header has one-second resolution, plus latency). */
export const CLOCK_PASS_SKEW_MS = 60_000;
/** Beyond this, certificates may be refused as not yet valid or renewal may be mistimed. */
export const CLOCK_FAIL_SKEW_MS = 300_000;

export interface CaDirectoryInfo {
  directoryUrl: string;
  termsOfService: string | undefined;
  /** Domains the CA recognises in CAA `issue` records (directory `meta.caaIdentities`). */
  caaIdentities: string[];
  /** The server's Date header, epoch ms. */
  serverDate: number | undefined;
}

export interface CaDirectoryCheckOptions {
  directoryUrl: string;
  /** Extra roots for the CA's HTTPS (private ACME servers). */
  caCertificates?: readonly string[] | undefined;
  agreeToTerms?: boolean | undefined;
  timeoutMs?: number | undefined;
  signal?: AbortSignal | undefined;
}

/** Fetches the ACME directory: reachable over trusted HTTPS, a real directory, terms of service known. */
export async function checkCaDirectory(options: CaDirectoryCheckOptions): Promise<{ result: CheckResult; directory: CaDirectoryInfo | undefined }> {
  const check = 'ca-directory';
  const subject = options.directoryUrl;
  let response: { status: number; date: string | undefined; body: string };
  try {
    response = await httpsGetText(options.directoryUrl, options.caCertificates ?? [], options.timeoutMs ?? DEFAULT_DOCTOR_TIMEOUT_MS, options.signal);
  } catch (error) {
    return {
      result: { check, subject, status: 'fail', detail: `unreachable: ${(error as Error).message}`, remedy: 'check the URL, network, proxy and firewall; for a private CA pass its root with --ca-root' },
      directory: undefined,
    };
  }
  let json: { newOrder?: unknown; meta?: { termsOfService?: unknown; caaIdentities?: unknown } } | undefined;
  try {
    json = JSON.parse(response.body) as typeof json;
  } catch {
    json = undefined;
  }
  if (response.status !== 200 || typeof json?.newOrder !== 'string') {
    return {
      result: { check, subject, status: 'fail', detail: `HTTP ${response.status}, not an ACME directory`, remedy: 'use the directory URL of the CA (or a preset such as letsencrypt)' },
      directory: undefined,
    };
  }
  const terms = typeof json.meta?.termsOfService === 'string' ? json.meta.termsOfService : undefined;
  const caaIdentities = Array.isArray(json.meta?.caaIdentities) ? json.meta.caaIdentities.filter((v): v is string => typeof v === 'string') : [];
  const parsedDate = response.date !== undefined ? Date.parse(response.date) : NaN;
  const directory: CaDirectoryInfo = {
    directoryUrl: options.directoryUrl,
    termsOfService: terms,
    caaIdentities,
    serverDate: Number.isNaN(parsedDate) ? undefined : parsedDate,
  };
  let result: CheckResult;
  if (terms === undefined) {
    result = { check, subject, status: 'pass', detail: 'directory reachable; the CA publishes no terms of service' };
  } else if (options.agreeToTerms === false) {
    result = { check, subject, status: 'warn', detail: `directory reachable; terms of service: ${terms} (not agreed yet)`, remedy: 'read the terms, then add --agree-to-terms (agreeToTerms: true)' };
  } else {
    result = { check, subject, status: 'pass', detail: `directory reachable; terms of service: ${terms}` };
  }
  return { result, directory };
}

/** Compares our clock with the CA's Date header. */
export function checkClock(serverDate: number | undefined, now: number): CheckResult {
  const check = 'clock';
  if (serverDate === undefined) return { check, status: 'skip', detail: 'no Date header from the CA to compare with' };
  const skew = now - serverDate;
  const detail = `local clock is ${Math.abs(Math.round(skew / 1000))} s ${skew >= 0 ? 'ahead of' : 'behind'} the CA`;
  if (Math.abs(skew) <= CLOCK_PASS_SKEW_MS) return { check, status: 'pass', detail };
  const remedy = 'synchronise the clock (e.g. timedatectl set-ntp true, or chrony/ntpd)';
  return { check, status: Math.abs(skew) <= CLOCK_FAIL_SKEW_MS ? 'warn' : 'fail', detail, remedy };
}

function httpsGetText(url: string, caCertificates: readonly string[], timeoutMs: number, signal: AbortSignal | undefined): Promise<{ status: number; date: string | undefined; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.get(
      url,
      { ca: [...tls.rootCertificates, ...caCertificates], agent: false, headers: { accept: 'application/json' }, ...(signal ? { signal } : {}) },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          body += chunk;
          if (body.length > 1_000_000) req.destroy(new Error('directory response too large'));
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, date: res.headers.date, body }));
        res.on('error', reject);
      },
    );
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}
