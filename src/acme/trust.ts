/**
 * The one place certkeeper touches acme-client's process-global state.
 *
 * acme-client sends every request through a single axios instance shared by
 * all its clients, with no per-client agent option. certkeeper installs one
 * request interceptor on it that picks an https.Agent by the request's origin
 * from a registry, so issuers trusting different private CAs coexist; origins
 * nobody registered use Node's defaults (system roots). Verification is never
 * switched off, and NODE_EXTRA_CA_CERTS is not needed.
 *
 * It also turns off acme-client's replay of 429/5xx responses (it resends an
 * already used nonce, acme-client issue #103): retry.ts re-runs the operation
 * instead, signed again.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { createHash } from 'node:crypto';
import https from 'node:https';
import { createRequire } from 'node:module';
import tls from 'node:tls';
import type AcmeClient from 'acme-client';
import { acme } from './acme-client.js';
import { Closable } from '../lifecycle.js';

import type { Logger } from '../logger.js';
import { unreachableFromError, isNetworkError } from './problem.js';
import { DEFAULT_ACME_REQUEST_TIMEOUT_MS } from '../defaults.js';


interface TrustEntry {
  /** Made on the first request to the origin (its secure context parses every system root). */
  agent: https.Agent | undefined;
  cas: readonly string[];
  caFingerprints: string;
  refs: number;
  /** Agents replaced by a merged one; destroyed when the entry goes. */
  retired: https.Agent[];
}

const byOrigin = new Map<string, TrustEntry>();
const logContext = new AsyncLocalStorage<Logger>();
let installed = false;
let requestTimeoutMs = DEFAULT_ACME_REQUEST_TIMEOUT_MS;

type Adapter = (config: Record<string, unknown>) => Promise<unknown>;

/** The http adapter of the very axios copy acme-client loaded (not a second copy). */
function acmeClientHttpAdapter(): Adapter {
  const require = createRequire(import.meta.url);
  const fromAcmeClient = createRequire(require.resolve('acme-client'));
  const axios = fromAcmeClient('axios') as { getAdapter(name: string): Adapter };
  return axios.getAdapter('http');
}

function originOf(url: string): string | undefined {
  try {
    return new URL(url).origin;
  } catch {
    return undefined;
  }
}

function requestUrl(config: Record<string, unknown>): string | undefined {
  const url = typeof config.url === 'string' ? config.url : undefined;
  const base = typeof config.baseURL === 'string' ? config.baseURL : undefined;
  if (url === undefined) return undefined;
  try {
    return new URL(url, base).href;
  } catch {
    return url;
  }
}

/** Installs the interceptor and global settings once per process; later calls do nothing. */
export function installAcmeClientHooks(): void {
  if (installed) return;
  installed = true;
  const instance = acme.axios;
  (instance.defaults as unknown as { acmeSettings: { retryMaxAttempts: number } }).acmeSettings.retryMaxAttempts = 0;
  const httpAdapter = acmeClientHttpAdapter();
  instance.interceptors.request.use((config) => {
    const cfg = config as unknown as Record<string, unknown>;
    const url = requestUrl(cfg);
    const origin = url ? originOf(url) : undefined;
    const entry = origin ? byOrigin.get(origin) : undefined;
    if (entry) cfg.httpsAgent = entry.agent ??= makeAgent(entry.cas);
    if (!cfg.timeout) cfg.timeout = requestTimeoutMs;
    // An error without `config` passes acme-client's response interceptor untouched.
    // Without this, its interceptor turns a refused connection into a TypeError.
    cfg.adapter = async (c: Record<string, unknown>) => {
      try {
        return await httpAdapter(c);
      } catch (error) {
        if (isNetworkError(error)) throw unreachableFromError(error, url);
        throw error;
      }
    };
    return config;
  });
  acme.setLogger((message: string) => {
    const log = logContext.getStore();
    if (log) log.debug({ acme: scrub(message) }, 'acme-client');
  });
}

/** acme-client logs URLs, statuses and nonces; strip anything PEM-shaped as a second fence. */
function scrub(message: string): string {
  return message.replace(/-----BEGIN [^-]+-----[\s\S]*?(-----END [^-]+-----|$)/g, '[pem redacted]').slice(0, 500);
}

/** Runs `fn` so acme-client's log lines emitted during it go to `logger` at debug level. */
export function runWithAcmeLogger<T>(logger: Logger, fn: () => Promise<T>): Promise<T> {
  return logContext.run(logger, fn);
}

/** Sets the per-request timeout for every ACME request of this process (the axios instance is shared). */
export function setRequestTimeout(ms: number): void {
  requestTimeoutMs = ms;
}

function fingerprint(cas: readonly string[]): string {
  return createHash('sha256').update([...cas].sort().join('\n')).digest('hex');
}

function makeAgent(cas: readonly string[]): https.Agent {
  // One secure context for every connection: with `ca` in the agent options Node parses the ~140
  // system roots again for each new socket and joins them into the pool key of every request
  // (bench/RESULTS.md, "#20 built package": a tenth of the CPU of 50 orders).
  return new https.Agent({ keepAlive: true, noDelay: true, secureContext: tls.createSecureContext({ ca: [...tls.rootCertificates, ...cas] }) });
}

/**
 * Trust registration for one issuer. Register the directory's origin, then the
 * origins of the URLs the directory lists (a CA may serve them elsewhere).
 */
export class TrustHandle extends Closable {
  readonly #cas: readonly string[];
  readonly #fingerprint: string;
  readonly #origins = new Set<string>();

  constructor(caCertificates: readonly string[]) {
    super('TrustHandle');
    // acme-client (and the node-forge and @peculiar/x509 it loads, ~0.2 s) is loaded by the first
    // connection (AcmeConnection installs the hooks), not when an issuer is constructed.
    this.#cas = caCertificates;
    this.#fingerprint = fingerprint(caCertificates);
  }

  /** Makes requests to `url`'s origin use this issuer's trust (system roots plus its CAs). */
  addOrigin(url: string): void {
    const origin = originOf(url);
    if (!origin || this.closed || this.#origins.has(origin)) return;
    const existing = byOrigin.get(origin);
    if (!existing) {
      byOrigin.set(origin, { agent: undefined, cas: this.#cas, caFingerprints: this.#fingerprint, refs: 1, retired: [] });
    } else if (existing.caFingerprints === this.#fingerprint) {
      existing.refs++;
    } else {
      // Two issuers, same origin, different CA lists: trust the union rather than break one of them.
      // The old agent may have requests in flight; it is destroyed with the entry.
      const cas = [...new Set([...existing.cas, ...this.#cas])];
      if (existing.agent) existing.retired.push(existing.agent);
      existing.agent = undefined;
      existing.cas = cas;
      existing.caFingerprints = fingerprint(cas);
      existing.refs++;
    }
    this.#origins.add(origin);
  }

  /** Drops this issuer's registrations; an agent nobody uses any more is destroyed (its sockets closed). */
  protected onClose(): void {
    for (const origin of this.#origins) {
      const entry = byOrigin.get(origin);
      if (!entry) continue;
      entry.refs--;
      if (entry.refs <= 0) {
        for (const agent of [entry.agent, ...entry.retired]) agent?.destroy();
        byOrigin.delete(origin);
      }
    }
    this.#origins.clear();
  }
}

/** Number of origins with a registered agent (for tests: close() must leave none behind). */
export function registeredOriginCount(): number {
  return byOrigin.size;
}

/**
 * A minimal fetch (plain GET) over acme-client's axios instance, so requests
 * outside the signed path (ARI) get the same per-origin CA trust.
 */
export const acmeClientFetch: typeof fetch = async (input, init) => {
  installAcmeClientHooks();
  const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
  const resp = await acme.axios.request({
    url,
    method: 'get',
    headers: { accept: 'application/json' },
    responseType: 'text',
    transformResponse: (data: unknown) => data,
    validateStatus: null,
    ...(init?.signal ? { signal: init.signal } : {}),
  });
  const headers = new Headers();
  for (const [name, value] of Object.entries(resp.headers ?? {})) {
    if (typeof value === 'string') headers.set(name, value);
  }
  return new Response(typeof resp.data === 'string' ? resp.data : JSON.stringify(resp.data), { status: resp.status, headers });
};
