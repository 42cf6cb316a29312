/** The DNS answers the checks need (A/AAAA and CAA), from one DNS server or from the system resolver. */
import { lazyModule } from '../lazy.js';
import type * as packet from 'dns-packet';
import { dnsQuery, type DnsServer } from '../dns/query.js';

// Loaded on first use (lazy.ts): the doctor is part of the package's root, most processes never run it.
const dns = lazyModule<typeof import('node:dns')>('node:dns');

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
      const [a, aaaa] = await Promise.all([dns.promises.resolve4(name).catch(empty), dns.promises.resolve6(name).catch(empty)]);
      return [...a, ...aaaa];
    },
    async caa(name) {
      const records = await dns.promises.resolveCaa(name).catch(empty);
      return records.map((record) => {
        const { critical, ...rest } = record as unknown as Record<string, unknown> & { critical: number };
        const [tag, value] = Object.entries(rest)[0] ?? ['', ''];
        return { critical: critical !== 0, tag: tag.toLowerCase(), value: String(value) };
      });
    },
  };
}
