/** DNS as a CA sees it: address records, the CAA set governing each name (RFC 8659), and the DNS-01 provider's writes. */
import { randomBytes } from 'node:crypto';
import type { DnsProvider } from '../dns/types.js';
import { parseIdentifier, type Identifier } from '../names.js';
import type { CaaRecord, DoctorResolver } from './resolvers.js';
import { errorMessage, type CheckResult } from './result.js';

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
