/**
 * A small DNS client for the DNS-01 path: asks one named server directly
 * (never the system's caching resolver), so the propagation check sees what an
 * authoritative server or a chosen resolver holds right now.
 *
 * UDP first, TCP when the answer is truncated. Each query has a random ID;
 * UDP datagrams whose ID, flags or question do not match are ignored (they may
 * be late answers or spoofing attempts), so only the server's own reply counts.
 */
import { randomInt } from 'node:crypto';
import net from 'node:net';
import type * as Packet from 'dns-packet';
import { lazyModule } from '../lazy.js';

// Loaded on the first query: serving certificates needs no DNS.
const packet = lazyModule<typeof Packet>('dns-packet');
import { AbortedError, DnsQueryError, InvalidOptionError } from '../errors.js';
import { durationMs, portText as validPortText } from '../validate.js';
import { DEFAULT_DNS_QUERY_TIMEOUT_MS } from '../defaults.js';

// Loaded on first use (lazy.ts): only DNS-01 and the doctor send DNS queries.
const dgram = lazyModule<typeof import('node:dgram')>('node:dgram');
const dns = lazyModule<typeof import('node:dns')>('node:dns');
export { DEFAULT_DNS_QUERY_TIMEOUT_MS };

export type DnsQueryType = 'TXT' | 'SOA' | 'NS' | 'CNAME' | 'A' | 'AAAA' | 'CAA';

export interface DnsServer {
  /** IP address (or host name) of the server. */
  host: string;
  port: number;
}

export interface DnsQueryOptions {
  /** Overall time for the query, UDP and any TCP retry together. */
  timeoutMs?: number | undefined;
  signal?: AbortSignal | undefined;
  /** Set RD: true when asking a recursive resolver, false (default) for an authoritative server. */
  recursionDesired?: boolean | undefined;
}

/** TXT record data: one or more character-strings. */
export type DnsTxtData = string | Buffer | Array<string | Buffer>;

/**
 * A resource record in the shape dns-packet decodes it (OPT pseudo-records removed); `data`
 * depends on `type`. Declared here rather than as dns-packet's type so the shipped .d.ts files
 * do not need @types/dns-packet, which consumers do not install.
 */
export interface DnsAnswer {
  type: string;
  name: string;
  ttl?: number | undefined;
  class?: string | undefined;
  data?: unknown;
}

export interface DnsQueryResult {
  /** `NOERROR` or `NXDOMAIN`; any other code is thrown as DnsQueryError. */
  rcode: 'NOERROR' | 'NXDOMAIN';
  /** The AA bit: the server answered from a zone it is authoritative for. */
  authoritative: boolean;
  answers: DnsAnswer[];
  authorities: DnsAnswer[];
  additionals: DnsAnswer[];
}

/** EDNS0 payload size recommended by DNS Flag Day 2020: no IP fragmentation. */
const EDNS_UDP_PAYLOAD_SIZE = 1232;
const MAX_TCP_MESSAGE = 65_535;
const MAX_CNAME_HOPS = 8;

export function formatServer(server: DnsServer): string {
  return net.isIPv6(server.host) ? `[${server.host}]:${server.port}` : `${server.host}:${server.port}`;
}

/**
 * Parses `host:port`, `[v6]:port`, or a bare host (port `defaultPort`).
 * Throws InvalidOptionError naming `option`.
 */
export function parseDnsServer(text: string, option = 'server', defaultPort = 53): DnsServer {
  if (typeof text !== 'string' || text.length === 0) throw new InvalidOptionError(option, 'must be "host:port"');
  let host: string;
  let portText: string | undefined;
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  if (bracketed) {
    host = bracketed[1] ?? '';
    portText = bracketed[2];
  } else if (net.isIPv6(text)) {
    host = text;
  } else {
    const colon = text.lastIndexOf(':');
    host = colon === -1 ? text : text.slice(0, colon);
    portText = colon === -1 ? undefined : text.slice(colon + 1);
  }
  if (host.length === 0 || /[\s/]/.test(host)) throw new InvalidOptionError(option, `"${text}" has no usable host`);
  return { host, port: validPortText(portText, option, 1) ?? defaultPort };
}

/** The resolvers this system is configured with (node:dns), as servers. */
export function systemResolvers(): DnsServer[] {
  return dns.getServers().map((s) => parseDnsServer(s, 'system resolver'));
}

function sameName(a: string, b: string): boolean {
  return trimDot(a).toLowerCase() === trimDot(b).toLowerCase();
}

function trimDot(name: string): string {
  return name.endsWith('.') ? name.slice(0, -1) : name;
}

/**
 * Sends one query to `server` and returns its records. NXDOMAIN is a normal
 * result; SERVFAIL, REFUSED and other codes throw DnsQueryError (reason
 * `rcode`), as do timeouts, network errors and malformed replies.
 */
export async function dnsQuery(
  server: DnsServer,
  name: string,
  type: DnsQueryType,
  options: DnsQueryOptions = {},
): Promise<DnsQueryResult> {
  const { signal } = options;
  const timeoutMs = durationMs(options.timeoutMs, 'timeoutMs') ?? DEFAULT_DNS_QUERY_TIMEOUT_MS;
  if (signal?.aborted) throw new AbortedError('DNS query aborted', { cause: signal.reason });

  const qname = trimDot(name);
  const id = randomInt(0, 0x10000);
  const query: Packet.Packet = {
    type: 'query',
    id,
    flags: options.recursionDesired ? packet.RECURSION_DESIRED : 0,
    questions: [{ type, name: qname, class: 'IN' }],
    additionals: [
      { type: 'OPT', name: '.', udpPayloadSize: EDNS_UDP_PAYLOAD_SIZE, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] },
    ],
  };
  const deadline = Date.now() + timeoutMs;
  const matches = (reply: Packet.DecodedPacket): boolean => {
    const q = reply.questions?.[0];
    return (
      reply.id === id &&
      reply.type === 'response' &&
      reply.questions?.length === 1 &&
      q !== undefined &&
      q.type === type &&
      sameName(q.name, qname)
    );
  };

  let reply = await udpExchange(server, packet.encode(query), matches, deadline, signal);
  if (reply.flag_tc) {
    reply = await tcpExchange(server, packet.streamEncode(query), matches, deadline, signal);
  }
  const rcode = (reply as Packet.DecodedPacket & { rcode?: string }).rcode ?? 'NOERROR';
  if (rcode !== 'NOERROR' && rcode !== 'NXDOMAIN') {
    throw new DnsQueryError(formatServer(server), 'rcode', `${rcode} for ${type} ${qname}`, rcode);
  }
  const records = (list: Packet.Answer[] | undefined): DnsAnswer[] => (list ?? []).filter((r) => r.type !== 'OPT') as DnsAnswer[];
  return {
    rcode,
    authoritative: reply.flag_aa,
    answers: records(reply.answers),
    authorities: records(reply.authorities),
    additionals: records(reply.additionals),
  };
}

type Matcher = (reply: Packet.DecodedPacket) => boolean;

/** Runs `start` with a timer and abort listener, releasing both (and the socket, via `cleanup`) on every path. */
function exchange(
  server: DnsServer,
  deadline: number,
  signal: AbortSignal | undefined,
  start: (settle: (error: Error | undefined, reply?: Packet.DecodedPacket) => void) => () => void,
): Promise<Packet.DecodedPacket> {
  return new Promise((resolve, reject) => {
    const where = formatServer(server);
    let done = false;
    let cleanup: () => void = () => {};
    const settle = (error: Error | undefined, reply?: Packet.DecodedPacket): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      cleanup();
      if (error) reject(error);
      else resolve(reply as Packet.DecodedPacket);
    };
    const onAbort = (): void => settle(new AbortedError('DNS query aborted', { cause: signal?.reason }));
    const timer = setTimeout(() => settle(new DnsQueryError(where, 'timeout', 'no answer in time')), Math.max(0, deadline - Date.now()));
    timer.unref();
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      cleanup = start(settle);
    } catch (error) {
      settle(new DnsQueryError(where, 'network', (error as Error).message, undefined, { cause: error }));
    }
    if (done) cleanup();
  });
}

function udpExchange(server: DnsServer, message: Buffer, matches: Matcher, deadline: number, signal: AbortSignal | undefined): Promise<Packet.DecodedPacket> {
  const where = formatServer(server);
  return exchange(server, deadline, signal, (settle) => {
    const socket = dgram.createSocket(net.isIPv6(server.host) ? 'udp6' : 'udp4');
    socket.on('error', (error) => settle(new DnsQueryError(where, 'network', error.message, undefined, { cause: error })));
    socket.on('message', (data) => {
      let reply: Packet.DecodedPacket;
      try {
        reply = packet.decode(data);
      } catch {
        return; // not a DNS message for us: keep waiting for the real reply
      }
      if (matches(reply)) settle(undefined, reply);
    });
    // connect() makes the kernel drop datagrams from any other address.
    // On failure Node calls this callback with the error instead of emitting 'error'.
    socket.connect(server.port, server.host, ((connectError?: Error) => {
      if (connectError) {
        settle(new DnsQueryError(where, 'network', connectError.message, undefined, { cause: connectError }));
        return;
      }
      try {
        socket.send(message, (error) => {
          if (error) settle(new DnsQueryError(where, 'network', error.message, undefined, { cause: error }));
        });
      } catch (error) {
        // The socket was closed meanwhile (timeout or abort): already settled.
        settle(new DnsQueryError(where, 'network', (error as Error).message, undefined, { cause: error }));
      }
    }) as () => void);
    return () => {
      try {
        socket.close();
      } catch {
        // already closed
      }
    };
  });
}

function tcpExchange(server: DnsServer, message: Buffer, matches: Matcher, deadline: number, signal: AbortSignal | undefined): Promise<Packet.DecodedPacket> {
  const where = formatServer(server);
  return exchange(server, deadline, signal, (settle) => {
    const socket = net.connect({ host: server.host, port: server.port });
    let buffered = Buffer.alloc(0);
    socket.on('connect', () => socket.write(message));
    socket.on('error', (error) => settle(new DnsQueryError(where, 'network', error.message, undefined, { cause: error })));
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      if (buffered.length < 2) return;
      const length = buffered.readUInt16BE(0);
      if (buffered.length > 2 + MAX_TCP_MESSAGE) {
        settle(new DnsQueryError(where, 'malformed', 'TCP reply too long'));
        return;
      }
      if (buffered.length < 2 + length) return;
      let reply: Packet.DecodedPacket;
      try {
        reply = packet.decode(buffered.subarray(2, 2 + length));
      } catch (error) {
        settle(new DnsQueryError(where, 'malformed', 'undecodable reply', undefined, { cause: error }));
        return;
      }
      if (!matches(reply)) settle(new DnsQueryError(where, 'mismatch', 'reply does not match the query'));
      else settle(undefined, reply);
    });
    socket.on('end', () => settle(new DnsQueryError(where, 'network', 'connection closed before a full reply')));
    return () => socket.destroy();
  });
}

/** Decodes TXT record data (one or more character-strings) into the single string it represents. */
export function txtValue(data: DnsTxtData): string {
  const parts = Array.isArray(data) ? data : [data];
  return parts.map((p) => (typeof p === 'string' ? p : p.toString('utf8'))).join('');
}

/** The TXT values owned by `name` in a result's answers. */
export function txtValues(result: DnsQueryResult, name: string): string[] {
  return result.answers.filter((a): a is Packet.TxtAnswer => a.type === 'TXT' && sameName(a.name, name)).map((a) => txtValue(a.data));
}

/** Asks each server in turn until one answers; throws the last error when none does. */
async function queryAny(servers: readonly DnsServer[], name: string, type: DnsQueryType, options: DnsQueryOptions): Promise<DnsQueryResult> {
  if (servers.length === 0) throw new InvalidOptionError('servers', 'at least one DNS server is needed');
  let last: unknown;
  for (const server of servers) {
    try {
      return await dnsQuery(server, name, type, options);
    } catch (error) {
      if (error instanceof AbortedError) throw error;
      last = error;
    }
  }
  throw last;
}

/**
 * Finds the zone holding `name`: asks for its SOA and walks up one label at a
 * time. A reply's SOA in the authority section (NODATA/NXDOMAIN) names the
 * zone directly. Returns the zone without trailing dot.
 */
export async function findZone(name: string, servers: readonly DnsServer[], options: DnsQueryOptions = {}): Promise<string> {
  const opts = { recursionDesired: true, ...options };
  let candidate = trimDot(name).toLowerCase();
  for (;;) {
    const result = await queryAny(servers, candidate, 'SOA', opts);
    const soa = result.answers.find((a) => a.type === 'SOA' && sameName(a.name, candidate));
    if (soa) return candidate;
    const cname = result.answers.find((a) => a.type === 'CNAME' && sameName(a.name, candidate));
    const authoritySoa = result.authorities.find((a) => a.type === 'SOA');
    // A CNAME at the candidate means it is no zone apex; its SOA in authority belongs to the target's zone.
    if (authoritySoa && !cname) {
      const zone = trimDot(authoritySoa.name).toLowerCase();
      if (candidate === zone || candidate.endsWith(`.${zone}`)) return zone;
    }
    const dot = candidate.indexOf('.');
    if (dot === -1) {
      throw new DnsQueryError(servers.map(formatServer).join(', '), 'rcode', `no SOA found for ${trimDot(name)}`, result.rcode);
    }
    candidate = candidate.slice(dot + 1);
  }
}

export interface NameServer extends DnsServer {
  /** The NS host name this address belongs to. */
  name: string;
}

export interface AuthoritativeServersOptions extends DnsQueryOptions {
  /** Port the authoritative servers listen on (default 53; tests use others). */
  port?: number | undefined;
}

/**
 * The addresses of every authoritative server of `zone`: its NS records, then
 * the A/AAAA of each (from glue when present, else asked of the resolver).
 */
export async function authoritativeServers(
  zone: string,
  resolvers: readonly DnsServer[],
  options: AuthoritativeServersOptions = {},
): Promise<NameServer[]> {
  const { port = 53, ...rest } = options;
  const opts = { recursionDesired: true, ...rest };
  const nsResult = await queryAny(resolvers, zone, 'NS', opts);
  const nsNames = [
    ...new Set(
      nsResult.answers.filter((a): a is Packet.StringAnswer => a.type === 'NS' && sameName(a.name, zone)).map((a) => trimDot(a.data).toLowerCase()),
    ),
  ];
  const out: NameServer[] = [];
  for (const nsName of nsNames) {
    const glue = nsResult.additionals
      .filter((a): a is Packet.StringAnswer => (a.type === 'A' || a.type === 'AAAA') && sameName(a.name, nsName))
      .map((a) => a.data);
    let addresses = glue;
    if (addresses.length === 0) {
      for (const type of ['A', 'AAAA'] as const) {
        const r = await queryAny(resolvers, nsName, type, opts);
        addresses = addresses.concat(r.answers.filter((a): a is Packet.StringAnswer => a.type === type).map((a) => a.data));
      }
    }
    for (const host of new Set(addresses)) out.push({ name: nsName, host, port });
  }
  if (out.length === 0) {
    throw new DnsQueryError(resolvers.map(formatServer).join(', '), 'rcode', `no authoritative server addresses found for ${trimDot(zone)}`, nsResult.rcode);
  }
  return out;
}

/**
 * Follows CNAME records from `name` and returns the final target, or `name`
 * itself when it is no alias (the DNS-01 delegation check).
 */
export async function resolveCname(name: string, servers: readonly DnsServer[], options: DnsQueryOptions = {}): Promise<string> {
  const opts = { recursionDesired: true, ...options };
  let current = trimDot(name).toLowerCase();
  const seen = new Set([current]);
  for (let hop = 0; hop < MAX_CNAME_HOPS; hop++) {
    const result = await queryAny(servers, current, 'CNAME', opts);
    const cname = result.answers.find((a): a is Packet.StringAnswer => a.type === 'CNAME' && sameName(a.name, current));
    if (!cname) return current;
    const target = trimDot(cname.data).toLowerCase();
    if (seen.has(target)) {
      throw new DnsQueryError(servers.map(formatServer).join(', '), 'malformed', `CNAME loop at ${current}`);
    }
    seen.add(target);
    current = target;
  }
  throw new DnsQueryError(servers.map(formatServer).join(', '), 'malformed', `more than ${MAX_CNAME_HOPS} CNAME hops from ${trimDot(name)}`);
}
