/**
 * Waits until a DNS-01 TXT value is visible where the CA will look: on every
 * authoritative server of the record's zone (found from its SOA and NS
 * records), or on resolvers the user names. Each server is asked directly, so
 * no cache in between can hide or fake the answer.
 */
import { type Clock, sleep, systemClock } from '../clock.js';
import { AbortedError, DnsPropagationTimeoutError, InvalidOptionError } from '../errors.js';
import type { Logger } from '../logger.js';
import { durationMs, port as validPort } from '../validate.js';
import {
  authoritativeServers,
  dnsQuery,
  type DnsServer,
  findZone,
  formatServer,
  parseDnsServer,
  systemResolvers,
  txtValues,
} from '../dns/query.js';
import { DEFAULT_PROPAGATION_INTERVAL_MS, DEFAULT_PROPAGATION_QUERY_TIMEOUT_MS, DEFAULT_PROPAGATION_TIMEOUT_MS } from '../defaults.js';
export { DEFAULT_PROPAGATION_TIMEOUT_MS, DEFAULT_PROPAGATION_INTERVAL_MS, DEFAULT_PROPAGATION_QUERY_TIMEOUT_MS };


export interface PropagationOptions {
  /** Give up after this long (default 120 s). */
  timeoutMs?: number | undefined;
  /** Pause between rounds of queries (default 2 s). */
  intervalMs?: number | undefined;
  /** Check these recursive resolvers ("host:port") instead of the zone's authoritative servers. */
  resolvers?: readonly string[] | undefined;
  /** Check exactly these servers ("host:port") as authoritative, skipping NS discovery. */
  authoritativeServers?: readonly string[] | undefined;
  /** Resolvers used to find the zone, its name servers and CNAME delegations (default: the system's). */
  lookupResolvers?: readonly string[] | undefined;
  /** Port the discovered authoritative servers listen on (default 53). */
  authoritativePort?: number | undefined;
  /** Per-query timeout (default 5 s, never more than the time left). */
  queryTimeoutMs?: number | undefined;
  /** Do not check at all. */
  skip?: boolean | undefined;
}

export interface ResolvedPropagationOptions {
  readonly timeoutMs: number;
  readonly intervalMs: number;
  readonly resolvers: readonly DnsServer[] | undefined;
  readonly authoritativeServers: readonly DnsServer[] | undefined;
  readonly lookupResolvers: readonly DnsServer[] | undefined;
  readonly authoritativePort: number;
  readonly queryTimeoutMs: number;
  readonly skip: boolean;
}

function positive(value: unknown, option: string, fallback: number): number {
  return durationMs(value, option) ?? fallback;
}

function serverList(value: readonly string[] | undefined, option: string, defaultPort = 53): readonly DnsServer[] | undefined {
  if (value === undefined) return undefined;
  if (!Array.isArray(value) || value.length === 0) throw new InvalidOptionError(option, 'must be a non-empty array of "host:port" strings');
  return Object.freeze(value.map((s, i) => Object.freeze(parseDnsServer(s, `${option}[${i}]`, defaultPort))));
}

export function resolvePropagationOptions(options: PropagationOptions = {}, option = 'propagation'): ResolvedPropagationOptions {
  if (typeof options !== 'object' || options === null) throw new InvalidOptionError(option, 'must be an object');
  if (options.skip !== undefined && typeof options.skip !== 'boolean') throw new InvalidOptionError(`${option}.skip`, 'must be a boolean');
  const port = validPort(options.authoritativePort, `${option}.authoritativePort`, 1) ?? 53;
  const resolved: ResolvedPropagationOptions = {
    timeoutMs: positive(options.timeoutMs, `${option}.timeoutMs`, DEFAULT_PROPAGATION_TIMEOUT_MS),
    intervalMs: positive(options.intervalMs, `${option}.intervalMs`, DEFAULT_PROPAGATION_INTERVAL_MS),
    resolvers: serverList(options.resolvers, `${option}.resolvers`),
    authoritativeServers: serverList(options.authoritativeServers, `${option}.authoritativeServers`),
    lookupResolvers: serverList(options.lookupResolvers, `${option}.lookupResolvers`),
    authoritativePort: port,
    queryTimeoutMs: positive(options.queryTimeoutMs, `${option}.queryTimeoutMs`, DEFAULT_PROPAGATION_QUERY_TIMEOUT_MS),
    skip: options.skip ?? false,
  };
  if (resolved.resolvers && resolved.authoritativeServers) {
    throw new InvalidOptionError(`${option}.resolvers`, 'give either resolvers or authoritativeServers, not both');
  }
  return Object.freeze(resolved);
}

interface CheckTarget {
  server: DnsServer;
  recursionDesired: boolean;
}

export interface WaitForTxtOptions {
  clock?: Clock | undefined;
  signal?: AbortSignal | undefined;
  logger?: Logger | undefined;
}

/** The servers to check for `recordName`: configured ones, or the zone's authoritative servers. */
async function checkTargets(recordName: string, options: ResolvedPropagationOptions, signal: AbortSignal | undefined): Promise<CheckTarget[]> {
  if (options.authoritativeServers) return options.authoritativeServers.map((server) => ({ server, recursionDesired: false }));
  if (options.resolvers) return options.resolvers.map((server) => ({ server, recursionDesired: true }));
  const lookup = options.lookupResolvers ?? systemResolvers();
  const queryOptions = { signal, timeoutMs: options.queryTimeoutMs };
  const zone = await findZone(recordName, lookup, queryOptions);
  const servers = await authoritativeServers(zone, lookup, { ...queryOptions, port: options.authoritativePort });
  return servers.map((server) => ({ server: { host: server.host, port: server.port }, recursionDesired: false }));
}

/**
 * Resolves once every checked server returns `value` among the TXT values of
 * `recordName`. Throws DnsPropagationTimeoutError naming the servers that
 * still lack it, or AbortedError.
 */
export async function waitForTxtRecord(
  recordName: string,
  value: string,
  options: ResolvedPropagationOptions,
  { clock = systemClock, signal, logger }: WaitForTxtOptions = {},
): Promise<void> {
  if (signal?.aborted) throw new AbortedError('DNS propagation check aborted', { cause: signal.reason });
  const deadline = clock.now() + options.timeoutMs;
  const targets = await checkTargets(recordName, options, signal);
  const pending = new Map(targets.map((t) => [formatServer(t.server), t]));
  logger?.debug({ recordName, servers: [...pending.keys()] }, 'checking DNS propagation');

  for (;;) {
    await Promise.all(
      [...pending].map(async ([where, target]) => {
        const remaining = Math.max(1, deadline - clock.now());
        try {
          const result = await dnsQuery(target.server, recordName, 'TXT', {
            signal,
            recursionDesired: target.recursionDesired,
            timeoutMs: Math.min(options.queryTimeoutMs, remaining),
          });
          if (txtValues(result, recordName).includes(value)) pending.delete(where);
        } catch (error) {
          if (error instanceof AbortedError) throw error;
          logger?.debug({ err: error, server: where }, 'propagation query failed; will retry');
        }
      }),
    );
    if (pending.size === 0) {
      logger?.debug({ recordName }, 'TXT record visible on every checked server');
      return;
    }
    const left = deadline - clock.now();
    if (left <= 0) throw new DnsPropagationTimeoutError(recordName, [...pending.keys()], options.timeoutMs);
    try {
      await sleep(clock, Math.min(options.intervalMs, left), signal);
    } catch (error) {
      throw new AbortedError('DNS propagation check aborted', { cause: error });
    }
  }
}
