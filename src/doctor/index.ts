/**
 * Pre-flight checks for obtaining certificates, each a plain function that
 * returns pass / warn / fail with a one-line remedy. `certkeeper doctor`
 * only formats what runDoctor() returns.
 *
 * The checks look where a CA will look: the ACME directory over HTTPS (and its
 * Date header for the clock), the storage, the HTTP-01 port reached through
 * each name's own A/AAAA records, the CAA records governing each name (RFC
 * 8659 tree climbing), and the DNS provider's ability to write a TXT record.
 */
import { systemClock, type Clock } from '../clock.js';
import type { DnsProvider } from '../dns/types.js';
import type { Logger } from '../logger.js';
import { parseIdentifier } from '../names.js';
import type { Storage } from '../storage/types.js';
import { checkCaDirectory, checkClock, type CaDirectoryInfo } from './ca.js';
import { checkAddressRecords, checkCaa, checkDnsProvider } from './dns.js';
import { checkHttp01, checkTlsAlpnPort } from './ports.js';
import { systemResolver, type DoctorResolver } from './resolvers.js';
import type { CheckResult } from './result.js';
import { checkStorage } from './storage.js';
export { DEFAULT_DOCTOR_TIMEOUT_MS } from '../defaults.js';
export { doctorFailed, type CheckResult, type CheckStatus } from './result.js';
export { serverResolver, systemResolver, type CaaRecord, type DoctorResolver } from './resolvers.js';
export { CLOCK_FAIL_SKEW_MS, CLOCK_PASS_SKEW_MS, checkCaDirectory, checkClock, type CaDirectoryCheckOptions, type CaDirectoryInfo } from './ca.js';
export { DOCTOR_LOCK_NAME, checkStorage } from './storage.js';
export { checkHttp01, checkTlsAlpnPort, type Http01CheckOptions } from './ports.js';
export { checkAddressRecords, checkCaa, checkDnsProvider, evaluateCaa, type CaaVerdict } from './dns.js';

export interface DoctorOptions {
  names: readonly string[];
  storage: Storage;
  /** `internal`: no CA, port or CAA checks (nothing leaves the machine). */
  issuer: 'acme' | 'internal';
  directoryUrl?: string | undefined;
  caCertificates?: readonly string[] | undefined;
  agreeToTerms?: boolean | undefined;
  /** Overrides the directory's `meta.caaIdentities` (many CAs publish none). */
  caaIdentities?: readonly string[] | undefined;
  /** Issuer key of the CA (storage folder), for the HTTP-01 test token. */
  issuerKey?: string | undefined;
  http01?: { port: number; host: string } | false | undefined;
  tlsAlpn01?: { port: number; host: string } | false | undefined;
  dnsProvider?: DnsProvider | undefined;
  resolver?: DoctorResolver | undefined;
  clock?: Clock | undefined;
  timeoutMs?: number | undefined;
  signal?: AbortSignal | undefined;
  logger?: Logger | undefined;
}

/** Runs every applicable check; never throws for a failing check (only for invalid names). */
export async function runDoctor(options: DoctorOptions): Promise<CheckResult[]> {
  const names = options.names.map((n) => parseIdentifier(n).value);
  const resolver = options.resolver ?? systemResolver();
  const clock = options.clock ?? systemClock;
  const signal = options.signal;
  const results: CheckResult[] = [];

  let directory: CaDirectoryInfo | undefined;
  if (options.issuer === 'acme' && options.directoryUrl !== undefined) {
    const ca = await checkCaDirectory({
      directoryUrl: options.directoryUrl,
      caCertificates: options.caCertificates,
      agreeToTerms: options.agreeToTerms,
      timeoutMs: options.timeoutMs,
      signal,
    });
    results.push(ca.result);
    directory = ca.directory;
    results.push(checkClock(directory?.serverDate, clock.now()));
  } else {
    results.push({ check: 'ca-directory', status: 'skip', detail: 'internal CA: no network needed' });
  }
  results.push(await checkStorage(options.storage, { timeoutMs: options.timeoutMs, signal }));

  if (options.issuer === 'acme') {
    if (options.http01) {
      if (names.length === 0) results.push({ check: 'http-01', status: 'skip', detail: 'no names given to fetch a test token through' });
      else {
        results.push(...(await checkHttp01({
          names: names.filter((n) => !n.startsWith('*.')),
          port: options.http01.port,
          host: options.http01.host,
          storage: options.storage,
          issuerKey: options.issuerKey ?? 'doctor',
          resolver,
          timeoutMs: options.timeoutMs,
          signal,
          logger: options.logger,
        })));
      }
    }
    if (options.tlsAlpn01) results.push(await checkTlsAlpnPort(options.tlsAlpn01));
  }
  for (const name of names) {
    const addresses = await checkAddressRecords(name, resolver, signal);
    // The internal CA validates nothing: missing records only matter to the clients that must reach the server.
    results.push(options.issuer === 'internal' && addresses.status === 'fail' ? { ...addresses, status: 'warn' } : addresses);
  }
  if (options.issuer === 'acme') {
    const identities = options.caaIdentities ?? directory?.caaIdentities ?? [];
    for (const name of names) results.push(await checkCaa(name, identities, resolver, signal));
  }
  if (options.dnsProvider) {
    const target = names[0];
    if (target === undefined) results.push({ check: 'dns-provider', status: 'skip', detail: 'no name given to write a test record under' });
    else results.push(await checkDnsProvider(options.dnsProvider, target, signal));
  }
  return results;
}
