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
import { randomBytes } from 'node:crypto';
import { promises as dnsPromises } from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import type * as packet from 'dns-packet';
import { systemClock, type Clock } from './clock.js';
import { CertKeeperError } from './errors.js';
import type { DnsProvider } from './dns/types.js';
import { dnsQuery, type DnsServer } from './dns/query.js';
import type { Logger } from './logger.js';
import { parseIdentifier, type Identifier } from './names.js';
import { Http01Solver, HTTP_CHALLENGE_PATH_PREFIX } from './challenges/http01.js';
import type { ChallengeContext } from './challenges/types.js';
import { checkStorageWritable } from './storage/check.js';
import type { Storage } from './storage/types.js';
import { DEFAULT_DOCTOR_TIMEOUT_MS } from './defaults.js';
export { DEFAULT_DOCTOR_TIMEOUT_MS };

export type CheckStatus = 'pass' | 'warn' | 'fail' | 'skip';

export interface CheckResult {
  /** What was checked, e.g. `ca-directory`, `caa`. */
  check: string;
  /** The name or port the check was about, if any. */
  subject?: string | undefined;
  status: CheckStatus;
  detail: string;
  /** One line saying what to do; set for warn and fail. */
  remedy?: string | undefined;
}

/** Clock offsets up to this are normal (the Date header has one-second resolution, plus latency). */
export const CLOCK_PASS_SKEW_MS = 60_000;
/** Beyond this, certificates may be refused as not yet valid or renewal may be mistimed. */
export const CLOCK_FAIL_SKEW_MS = 300_000;
/** Lock name used to prove the storage's lock works. */
export const DOCTOR_LOCK_NAME = 'doctor_check';

// ------------------------------------------------------------------- DNS lookups

export interface CaaRecord {
  critical: boolean;
  tag: string;
  value: string;
}

/** The DNS answers the checks need; backed by one DNS server or by the system resolver. */
export interface DoctorResolver {
  /** A and AAAA addresses (empty when the name has none or does not exist). */
  addresses(name: string, signal?: AbortSignal): Promise<string[]>;
  /** CAA records at exactly this name (empty when none). */
  caa(name: string, signal?: AbortSignal): Promise<CaaRecord[]>;
}

/** Asks one DNS server (recursion desired), e.g. a local resolver or a test server. */
export function serverResolver(server: DnsServer, timeoutMs = 5_000): DoctorResolver {
  const query = async (name: string, type: 'A' | 'AAAA' | 'CAA', signal?: AbortSignal) =>
    (await dnsQuery(server, name, type, { recursionDesired: true, timeoutMs, signal })).answers.filter((a) => a.type === type);
  return {
    async addresses(name, signal) {
      const [a, aaaa] = await Promise.all([query(name, 'A', signal), query(name, 'AAAA', signal)]);
      return [...a, ...aaaa].map((answer) => String(answer.data));
    },
    async caa(name, signal) {
      return (await query(name, 'CAA', signal)).map((answer) => {
        const data = answer.data as packet.CaaData;
        return { critical: data.issuerCritical === true || ((data.flags ?? 0) & 128) !== 0, tag: String(data.tag).toLowerCase(), value: String(data.value) };
      });
    },
  };
}

/** The system's resolver through node:dns. */
export function systemResolver(): DoctorResolver {
  const empty = (error: unknown): never[] => {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENODATA' || code === 'ENOTFOUND' || code === 'NXDOMAIN') return [];
    throw error;
  };
  return {
    async addresses(name) {
      const [a, aaaa] = await Promise.all([dnsPromises.resolve4(name).catch(empty), dnsPromises.resolve6(name).catch(empty)]);
      return [...a, ...aaaa];
    },
    async caa(name) {
      const records = await dnsPromises.resolveCaa(name).catch(empty);
      return records.map((record) => {
        const { critical, ...rest } = record as unknown as Record<string, unknown> & { critical: number };
        const [tag, value] = Object.entries(rest)[0] ?? ['', ''];
        return { critical: critical !== 0, tag: tag.toLowerCase(), value: String(value) };
      });
    },
  };
}

// ----------------------------------------------------------------- CA and clock

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

// ---------------------------------------------------------------------- storage

/** The storage takes a write/read/delete round trip, and its lock can be taken and released. */
export async function checkStorage(storage: Storage, options: { timeoutMs?: number | undefined; signal?: AbortSignal | undefined } = {}): Promise<CheckResult> {
  const check = 'storage';
  try {
    await checkStorageWritable(storage);
  } catch (error) {
    return { check, status: 'fail', detail: (error as Error).message, remedy: 'fix permissions or free space, or point --storage somewhere writable' };
  }
  try {
    await storage.lock(DOCTOR_LOCK_NAME, { timeoutMs: options.timeoutMs ?? DEFAULT_DOCTOR_TIMEOUT_MS, signal: options.signal });
    await storage.unlock(DOCTOR_LOCK_NAME);
  } catch (error) {
    return { check, status: 'fail', detail: `writable, but its lock failed: ${(error as Error).message}`, remedy: 'remove a stale lock left by a crashed process, or check the lock backend' };
  }
  return { check, status: 'pass', detail: 'writable, readable, and its lock works' };
}

// ------------------------------------------------------------------ challenge ports

export interface Http01CheckOptions {
  names: readonly string[];
  port: number;
  /** Address to bind ('' for all). */
  host: string;
  storage: Storage;
  /** Issuer key under which the test token is filed in storage (so a running keeper sharing the storage can answer). */
  issuerKey: string;
  resolver: DoctorResolver;
  timeoutMs?: number | undefined;
  signal?: AbortSignal | undefined;
  logger?: Logger | undefined;
}

/**
 * Serves a test token the way HTTP-01 does (our own listener, or a server
 * already on the port that answers from the shared storage) and fetches it
 * through each name's addresses with that Host, as the CA would.
 */
export async function checkHttp01(options: Http01CheckOptions): Promise<CheckResult[]> {
  const check = 'http-01';
  const where = `${options.host || '*'}:${options.port}`;
  const solver = new Http01Solver({ storage: options.storage, port: options.port, host: options.host, listener: true, logger: options.logger });
  const challenges: ChallengeContext[] = [];
  const results: CheckResult[] = [];
  let listening = true;
  let listenError: Error | undefined;
  try {
    for (const name of options.names) {
      const identifier = parseIdentifier(name);
      const token = randomBytes(24).toString('base64url');
      const challenge: ChallengeContext = {
        identifier,
        type: 'http-01',
        token,
        keyAuthorization: `${token}.certkeeper-doctor`,
        issuerKey: options.issuerKey,
        signal: options.signal,
      };
      challenges.push(challenge);
      try {
        await solver.present(challenge);
      } catch (error) {
        // The token is filed in storage before the listener starts: a server already on the port may still answer it.
        listening = false;
        listenError = error as Error;
      }
    }
    if (!listening && /EACCES/.test(String(listenError?.message))) {
      return [{ check, subject: where, status: 'fail', detail: `cannot bind ${where}: permission denied`, remedy: 'run with CAP_NET_BIND_SERVICE (setcap cap_net_bind_service=+ep $(which node)) or forward port 80 to --http-port' }];
    }
    for (const challenge of challenges) {
      results.push(await fetchChallenge(challenge, options, listening, where));
    }
  } finally {
    for (const challenge of challenges) await solver.cleanUp(challenge).catch(() => undefined);
    await solver.close();
  }
  return results;
}

async function fetchChallenge(challenge: ChallengeContext, options: Http01CheckOptions, listening: boolean, where: string): Promise<CheckResult> {
  const name = challenge.identifier.value;
  const base = { check: 'http-01', subject: name };
  const addresses = challenge.identifier.type === 'ip' ? [name] : await options.resolver.addresses(name, options.signal).catch(() => []);
  if (addresses.length === 0) {
    return { ...base, status: 'fail', detail: 'no A/AAAA address to reach', remedy: `add an A or AAAA record for ${name} pointing at this server` };
  }
  const failures: string[] = [];
  for (const address of addresses) {
    try {
      const body = await httpGetText(address, options.port, name, `${HTTP_CHALLENGE_PATH_PREFIX}${challenge.token}`, options.timeoutMs ?? DEFAULT_DOCTOR_TIMEOUT_MS, options.signal);
      if (body.status === 200 && body.text.trim() === challenge.keyAuthorization) continue;
      failures.push(`${address}: HTTP ${body.status}${body.status === 200 ? ' with another body' : ''}`);
    } catch (error) {
      failures.push(`${address}: ${(error as Error).message}`);
    }
  }
  const how = listening ? `certkeeper listened on ${where}` : `${where} was in use; the server there answered from storage`;
  if (failures.length === 0) return { ...base, status: 'pass', detail: `test token fetched through ${addresses.join(', ')} port ${options.port} (${how})` };
  const remedy = listening
    ? `make ${name} port 80 reach this host's port ${options.port} (DNS, firewall, port forwarding)`
    : `the program on ${where} must answer ACME challenges: mount keeper.httpChallengeHandler() with the same storage, or free the port`;
  return { ...base, status: 'fail', detail: `test token not served: ${failures.join('; ')}`, remedy };
}

/** Whether the TLS-ALPN-01 port can be bound (or is already held, presumably by your HTTPS server). */
export async function checkTlsAlpnPort(options: { port: number; host: string }): Promise<CheckResult> {
  const check = 'tls-alpn-01';
  const subject = `${options.host || '*'}:${options.port}`;
  const server = net.createServer();
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ port: options.port, host: options.host || undefined }, () => resolve());
    });
    return { check, subject, status: 'pass', detail: 'port can be bound for the TLS-ALPN-01 listener' };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') {
      return { check, subject, status: 'warn', detail: 'port in use', remedy: 'fine if it is your HTTPS server using keeper.tlsOptions(); otherwise free it or disable TLS-ALPN-01' };
    }
    return { check, subject, status: 'fail', detail: `cannot bind: ${(error as Error).message}`, remedy: code === 'EACCES' ? 'grant CAP_NET_BIND_SERVICE or use a port above 1023 forwarded from 443' : 'check the address' };
  } finally {
    await new Promise<void>((resolve) => (server.listening ? server.close(() => resolve()) : resolve()));
  }
}

// -------------------------------------------------------------------- DNS checks

export async function checkAddressRecords(name: string, resolver: DoctorResolver, signal?: AbortSignal): Promise<CheckResult> {
  const check = 'dns-addresses';
  const identifier = parseIdentifier(name);
  if (identifier.type === 'ip') return { check, subject: identifier.value, status: 'skip', detail: 'an IP address needs no DNS records' };
  const lookup = identifier.value.startsWith('*.') ? identifier.value.slice(2) : identifier.value;
  try {
    const addresses = await resolver.addresses(lookup, signal);
    if (addresses.length === 0) {
      return { check, subject: identifier.value, status: 'fail', detail: 'no A or AAAA records', remedy: `add A/AAAA records for ${lookup} (not needed for DNS-01 alone)` };
    }
    return { check, subject: identifier.value, status: 'pass', detail: addresses.join(', ') };
  } catch (error) {
    return { check, subject: identifier.value, status: 'fail', detail: `lookup failed: ${(error as Error).message}`, remedy: 'check the resolver (--resolver) and the zone' };
  }
}

export interface CaaVerdict {
  allowed: boolean | undefined;
  /** The name whose CAA set applies (undefined when no name up the tree has one). */
  relevantName: string | undefined;
  records: CaaRecord[];
  reason: string;
}

/** Property tags this check understands (RFC 8659, RFC 9495 issuemail/issuevmc are not about TLS). */
const KNOWN_CAA_TAGS = new Set(['issue', 'issuewild', 'iodef', 'issuemail', 'issuevmc', 'contactemail', 'contactphone']);

/**
 * RFC 8659 section 3: the relevant record set is the CAA set of the name, or
 * else of its parent, and so on up to (not including) the root. Then section
 * 4: `issuewild` governs wildcards when present, otherwise `issue`; an empty
 * issuer-domain (`;`) allows no CA. `caaIdentities` empty means the CA did not
 * say which domains name it, so a set naming some CA cannot be judged.
 */
export async function evaluateCaa(identifier: Identifier, caaIdentities: readonly string[], resolver: DoctorResolver, signal?: AbortSignal): Promise<CaaVerdict> {
  const wildcard = identifier.value.startsWith('*.');
  const labels = (wildcard ? identifier.value.slice(2) : identifier.value).split('.');
  for (let i = 0; i < labels.length; i++) {
    const name = labels.slice(i).join('.');
    const records = await resolver.caa(name, signal);
    if (records.length === 0) continue;
    const unknownCritical = records.find((r) => r.critical && !KNOWN_CAA_TAGS.has(r.tag));
    if (unknownCritical) return { allowed: false, relevantName: name, records, reason: `critical unknown property "${unknownCritical.tag}" forbids issuance` };
    const wild = records.filter((r) => r.tag === 'issuewild');
    const applicable = wildcard && wild.length > 0 ? wild : records.filter((r) => r.tag === 'issue');
    if (applicable.length === 0) return { allowed: true, relevantName: name, records, reason: `CAA at ${name} has no ${wildcard ? 'issue/issuewild' : 'issue'} property` };
    const issuers = applicable.map((r) => (r.value.split(';')[0] ?? '').trim().toLowerCase()).filter((d) => d.length > 0);
    if (issuers.length === 0) return { allowed: false, relevantName: name, records, reason: `CAA at ${name} allows no CA ("${applicable[0]?.tag} ;")` };
    if (caaIdentities.length === 0) {
      return { allowed: undefined, relevantName: name, records, reason: `CAA at ${name} allows ${issuers.join(', ')}; the CA publishes no caaIdentities to compare` };
    }
    const ours = caaIdentities.map((d) => d.toLowerCase());
    const match = issuers.find((d) => ours.includes(d));
    return match
      ? { allowed: true, relevantName: name, records, reason: `CAA at ${name} allows ${match}` }
      : { allowed: false, relevantName: name, records, reason: `CAA at ${name} allows only ${issuers.join(', ')}, not ${ours.join(', ')}` };
  }
  return { allowed: true, relevantName: undefined, records: [], reason: 'no CAA records up the tree: any CA may issue' };
}

export async function checkCaa(name: string, caaIdentities: readonly string[], resolver: DoctorResolver, signal?: AbortSignal): Promise<CheckResult> {
  const check = 'caa';
  const identifier = parseIdentifier(name);
  if (identifier.type === 'ip') return { check, subject: identifier.value, status: 'skip', detail: 'CAA does not apply to IP addresses' };
  try {
    const verdict = await evaluateCaa(identifier, caaIdentities, resolver, signal);
    if (verdict.allowed === true) return { check, subject: identifier.value, status: 'pass', detail: verdict.reason };
    if (verdict.allowed === undefined) {
      return { check, subject: identifier.value, status: 'warn', detail: verdict.reason, remedy: 'make sure one issue value is your CA\'s domain (pass it with --caa-identity to check)' };
    }
    const ours = caaIdentities[0] ?? 'your CA\'s domain';
    return { check, subject: identifier.value, status: 'fail', detail: verdict.reason, remedy: `add a CAA record "0 ${wildcardTag(identifier)} \\"${ours}\\"" at ${verdict.relevantName ?? identifier.value}` };
  } catch (error) {
    return { check, subject: identifier.value, status: 'fail', detail: `CAA lookup failed: ${(error as Error).message}`, remedy: 'a CA refuses to issue when CAA lookups fail (SERVFAIL): fix the zone\'s DNS servers' };
  }
}

function wildcardTag(identifier: Identifier): string {
  return identifier.value.startsWith('*.') ? 'issuewild' : 'issue';
}

/** Adds and removes a test TXT record through the DNS-01 provider. */
export async function checkDnsProvider(provider: DnsProvider, name: string, signal?: AbortSignal): Promise<CheckResult> {
  const check = 'dns-provider';
  const base = parseIdentifier(name).value.replace(/^\*\./, '');
  const record = { name: `_acme-challenge.${base}`, value: `certkeeper-doctor-${randomBytes(8).toString('hex')}`, ttl: 60 };
  const subject = `${provider.name}: ${record.name}`;
  try {
    await provider.addTxtRecord(record, signal);
  } catch (error) {
    return { check, subject, status: 'fail', detail: `could not add a TXT record: ${errorMessage(error)}`, remedy: 'check the provider credentials and that they may write this zone' };
  }
  try {
    await provider.removeTxtRecord(record, signal);
  } catch (error) {
    return { check, subject, status: 'fail', detail: `added a TXT record but could not remove it: ${errorMessage(error)}`, remedy: `remove the stray TXT value ${record.value} by hand and check delete permissions` };
  }
  return { check, subject, status: 'pass', detail: 'added and removed a test TXT record' };
}

// -------------------------------------------------------------------- all checks

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

/** True when any check failed (the CLI exits 1). */
export function doctorFailed(results: readonly CheckResult[]): boolean {
  return results.some((r) => r.status === 'fail');
}

// ------------------------------------------------------------------ HTTP helpers

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

function httpGetText(address: string, port: number, host: string, path: string, timeoutMs: number, signal: AbortSignal | undefined): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(
      { host: address, port, path, headers: { host: hostHeader(host, port) }, agent: false, ...(signal ? { signal } : {}) },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          if (text.length < 4096) text += chunk;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
        res.on('error', reject);
      },
    );
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}

function hostHeader(host: string, port: number): string {
  const bare = net.isIPv6(host) ? `[${host}]` : host;
  return port === 80 ? bare : `${bare}:${port}`;
}

function errorMessage(error: unknown): string {
  return error instanceof CertKeeperError ? `${error.message} (${error.code})` : (error as Error).message;
}
