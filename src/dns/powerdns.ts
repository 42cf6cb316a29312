/**
 * DNS-01 through the PowerDNS Authoritative HTTP API.
 *
 * The API replaces whole RRsets, so adding one TXT value is read-modify-write:
 * GET the RRset, PATCH it with `changetype: REPLACE` holding the other values
 * (verbatim) plus or minus ours. Updates of one name are serialised within
 * this provider so the wildcard and apex values of one certificate, written at
 * the same moment, do not overwrite each other. The API has no conditional
 * PATCH, so two processes writing the same name at once can still race.
 */
import { inspect } from 'node:util';
import { AbortedError, DnsProviderError, InvalidOptionError } from '../errors.js';
import type { Logger } from '../logger.js';
import { createDefaultLogger, validateLogger } from '../logger.js';
import { canonicalName } from './tsig.js';
import type { DnsProvider, DnsRecord } from './types.js';
import { durationMs } from '../validate.js';
import { DEFAULT_POWERDNS_SERVER_ID, DEFAULT_POWERDNS_TIMEOUT_MS } from '../defaults.js';
export { DEFAULT_POWERDNS_SERVER_ID, DEFAULT_POWERDNS_TIMEOUT_MS };


const PROVIDER = 'powerdns';
/** How much of an error body goes into a message. */
const MAX_ERROR_BODY = 300;

export interface PowerDnsOptions {
  /** Base URL of the PowerDNS webserver, e.g. `http://127.0.0.1:8081` (`/api/v1` is appended unless present). */
  apiUrl: string;
  /** The `api-key` of pdns.conf; sent as X-API-Key, never logged. */
  apiKey: string;
  /** Default `localhost` (the only id PowerDNS Authoritative uses). */
  serverId?: string;
  /** Zone to change; by default the longest zone on the server that contains the name. */
  zone?: string;
  /** TTL of the TXT RRset; default the record's ttl. */
  ttl?: number;
  /** Per-request time limit (default 10 s). */
  timeoutMs?: number;
  logger?: Logger;
}

interface PowerDnsRecordJson {
  content: string;
  disabled: boolean;
}

interface RrsetJson {
  name: string;
  type: string;
  ttl?: number;
  records: PowerDnsRecordJson[];
}

export class PowerDnsProvider implements DnsProvider {
  readonly name = PROVIDER;
  readonly #apiBase: string;
  readonly #apiKey: string;
  readonly #serverId: string;
  readonly #zone: string | undefined;
  readonly #ttl: number | undefined;
  readonly #timeoutMs: number;
  readonly #log: Logger;
  /** Tail of the update chain per record name: one read-modify-write at a time. */
  readonly #queues = new Map<string, Promise<unknown>>();

  constructor(options: PowerDnsOptions) {
    if (typeof options !== 'object' || options === null) throw new InvalidOptionError('powerdns', 'options object is required');
    this.#apiBase = resolveApiUrl(options.apiUrl);
    if (typeof options.apiKey !== 'string' || options.apiKey.length === 0) throw new InvalidOptionError('apiKey', 'must be a non-empty string');
    this.#apiKey = options.apiKey;
    const serverId = options.serverId ?? DEFAULT_POWERDNS_SERVER_ID;
    if (typeof serverId !== 'string' || serverId.length === 0) throw new InvalidOptionError('serverId', 'must be a non-empty string');
    this.#serverId = serverId;
    this.#zone = options.zone === undefined ? undefined : canonicalName(options.zone, 'zone');
    if (options.ttl !== undefined && (!Number.isInteger(options.ttl) || options.ttl < 0)) throw new InvalidOptionError('ttl', 'must be a non-negative integer');
    this.#ttl = options.ttl;
    const timeoutMs = durationMs(options.timeoutMs, 'timeoutMs') ?? DEFAULT_POWERDNS_TIMEOUT_MS;
    this.#timeoutMs = timeoutMs;
    const base = options.logger === undefined ? createDefaultLogger('silent') : validateLogger(options.logger);
    this.#log = base.child({ component: 'dns-powerdns' });
  }

  async addTxtRecord(record: DnsRecord, signal?: AbortSignal): Promise<void> {
    await this.#change('add', record, signal);
  }

  async removeTxtRecord(record: DnsRecord, signal?: AbortSignal): Promise<void> {
    await this.#change('remove', record, signal);
  }

  #change(action: 'add' | 'remove', record: DnsRecord, signal: AbortSignal | undefined): Promise<void> {
    const name = canonicalName(record.name, 'record.name');
    const previous = this.#queues.get(name) ?? Promise.resolve();
    const run = previous.catch(() => undefined).then(() => this.#readModifyWrite(action, name, record, signal));
    this.#queues.set(name, run);
    const forget = (): void => {
      if (this.#queues.get(name) === run) this.#queues.delete(name);
    };
    run.then(forget, forget);
    return run;
  }

  async #readModifyWrite(action: 'add' | 'remove', name: string, record: DnsRecord, signal: AbortSignal | undefined): Promise<void> {
    if (signal?.aborted) throw new AbortedError('DNS update aborted', { cause: signal.reason });
    if (typeof record.value !== 'string' || record.value.length === 0) throw new InvalidOptionError('record.value', 'must be a non-empty string');
    const zone = this.#zone ?? (await this.#findZone(name, signal));
    if (name !== zone && !name.endsWith(`.${zone}`)) throw new DnsProviderError(PROVIDER, `${name} is not inside zone ${zone}`, 'NOTZONE');
    const zonePath = `/servers/${encodeURIComponent(this.#serverId)}/zones/${encodeURIComponent(`${zone}.`)}`;
    const fqdn = `${name}.`;

    const zoneJson = (await this.#request('GET', `${zonePath}?rrsets=true&rrset_name=${encodeURIComponent(fqdn)}&rrset_type=TXT`, undefined, signal)) as {
      rrsets?: RrsetJson[];
    };
    const existing = (zoneJson.rrsets ?? []).find((r) => r.type === 'TXT' && r.name.toLowerCase() === fqdn);
    const others = (existing?.records ?? []).filter((r) => parseTxtContent(r.content) !== record.value);
    const had = (existing?.records.length ?? 0) !== others.length;
    if (action === 'add' && had) return; // already present: nothing to write
    if (action === 'remove' && !had) return;

    const records = action === 'add' ? [...others, { content: quoteTxt(record.value), disabled: false }] : others;
    const ttl = this.#ttl ?? existing?.ttl ?? record.ttl;
    const rrset =
      records.length === 0
        ? { name: fqdn, type: 'TXT', changetype: 'DELETE' }
        : { name: fqdn, type: 'TXT', ttl, changetype: 'REPLACE', records };
    await this.#request('PATCH', zonePath, { rrsets: [rrset] }, signal);
    this.#log.debug({ record: { name, zone }, values: records.length }, action === 'add' ? 'TXT value added' : 'TXT value removed');
  }

  /** The longest zone on the server containing `name`, asking `?zone=` for each ancestor. */
  async #findZone(name: string, signal: AbortSignal | undefined): Promise<string> {
    const labels = name.split('.');
    for (let i = 0; i < labels.length; i++) {
      const candidate = labels.slice(i).join('.');
      const zones = (await this.#request('GET', `/servers/${encodeURIComponent(this.#serverId)}/zones?zone=${encodeURIComponent(`${candidate}.`)}`, undefined, signal)) as unknown[];
      if (Array.isArray(zones) && zones.length > 0) return candidate;
    }
    throw new DnsProviderError(PROVIDER, `no zone on ${this.#apiBase} contains ${name}; create it or set the zone option`, 'ZONE_NOT_FOUND');
  }

  async #request(method: string, path: string, body: unknown, signal: AbortSignal | undefined): Promise<unknown> {
    const timeout = AbortSignal.timeout(this.#timeoutMs);
    const combined = signal ? AbortSignal.any([signal, timeout]) : timeout;
    let response: Response;
    let text: string;
    try {
      response = await fetch(`${this.#apiBase}${path}`, {
        method,
        headers: { 'X-API-Key': this.#apiKey, accept: 'application/json', ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: combined,
      });
      text = await response.text();
    } catch (error) {
      if (signal?.aborted) throw new AbortedError('DNS update aborted', { cause: signal.reason });
      if (timeout.aborted) {
        throw new DnsProviderError(PROVIDER, `${method} ${this.#apiBase}${stripQuery(path)}: no answer within ${this.#timeoutMs} ms`, 'TIMEOUT');
      }
      const cause = error instanceof Error && error.cause instanceof Error ? error.cause.message : String(error);
      throw new DnsProviderError(PROVIDER, `${method} ${this.#apiBase}${stripQuery(path)} failed: ${cause}`, 'NETWORK', { cause: error });
    }
    if (!response.ok) throw httpError(method, `${this.#apiBase}${stripQuery(path)}`, response.status, text);
    if (text.length === 0) return undefined;
    try {
      return JSON.parse(text);
    } catch (error) {
      throw new DnsProviderError(PROVIDER, `${method} ${this.#apiBase}${stripQuery(path)}: the answer is not JSON`, 'MALFORMED', { cause: error });
    }
  }

  toJSON(): Record<string, unknown> {
    return { name: this.name, apiUrl: this.#apiBase, serverId: this.#serverId, zone: this.#zone };
  }

  [inspect.custom](): string {
    return `PowerDnsProvider ${inspect(this.toJSON())}`;
  }
}

function resolveApiUrl(apiUrl: unknown): string {
  if (typeof apiUrl !== 'string') throw new InvalidOptionError('apiUrl', 'must be an http(s) URL');
  let url: URL;
  try {
    url = new URL(apiUrl);
  } catch {
    throw new InvalidOptionError('apiUrl', 'must be an http(s) URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new InvalidOptionError('apiUrl', 'must be an http(s) URL');
  if (url.username || url.password) throw new InvalidOptionError('apiUrl', 'must not hold credentials; use apiKey');
  const base = url.href.replace(/\/+$/, '');
  return base.endsWith('/api/v1') ? base : `${base}/api/v1`;
}

function stripQuery(path: string): string {
  const index = path.indexOf('?');
  return index === -1 ? path : path.slice(0, index);
}

function httpError(method: string, url: string, status: number, body: string): DnsProviderError {
  let detail = body;
  try {
    const parsed = JSON.parse(body) as { error?: unknown };
    if (typeof parsed.error === 'string') detail = parsed.error;
  } catch {
    // not JSON: keep the text
  }
  detail = detail.replace(/\s+/g, ' ').trim().slice(0, MAX_ERROR_BODY);
  const hint =
    status === 401 || status === 403
      ? 'the API key was rejected'
      : status === 404
        ? 'the server id or zone does not exist'
        : status === 422
          ? 'PowerDNS rejected the change'
          : `HTTP ${status}`;
  return new DnsProviderError(PROVIDER, `${method} ${url}: ${hint}${detail ? ` (${detail})` : ''}`, `HTTP ${status}`);
}

/** TXT content in PowerDNS presentation format: one quoted string per 255 bytes, `"` and `\` escaped. */
export function quoteTxt(value: string): string {
  const bytes = Buffer.from(value, 'utf8');
  const parts: string[] = [];
  for (let i = 0; i < bytes.length; i += 255) {
    const chunk = bytes.subarray(i, i + 255).toString('utf8');
    parts.push(`"${chunk.replace(/[\\"]/g, (c) => `\\${c}`)}"`);
  }
  return parts.join(' ');
}

/** The value a TXT content string represents: its quoted strings joined, escapes (`\"`, `\\`, `\DDD`) undone. */
export function parseTxtContent(content: string): string {
  const strings = [...content.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((m) => m[1] ?? '');
  if (strings.length === 0) return content;
  const bytes: number[] = [];
  for (const text of strings) {
    const chars = Array.from(text); // code points, so non-BMP characters stay whole
    for (let i = 0; i < chars.length; i++) {
      const c = chars[i] ?? '';
      const digits = chars.slice(i + 1, i + 4).join('');
      if (c === '\\' && /^\d{3}$/.test(digits)) {
        bytes.push(Number(digits));
        i += 3;
      } else if (c === '\\' && i + 1 < chars.length) {
        bytes.push(...Buffer.from(chars[i + 1] ?? '', 'utf8'));
        i += 1;
      } else {
        bytes.push(...Buffer.from(c, 'utf8'));
      }
    }
  }
  return Buffer.from(bytes).toString('utf8');
}
