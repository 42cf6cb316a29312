/**
 * serveHttps(): HTTPS for an application in one call (the counterpart of
 * certmagic's HTTPS()). It listens on the HTTP port with the challenge
 * handler (HTTP-01, and a 308 redirect to HTTPS for everything else) and on
 * the HTTPS port with the keeper's TLS options (HTTP/2 and HTTP/1.1 through
 * ALPN, TLS-ALPN-01 answered in the handshake), then obtains or loads the
 * certificates with manageSync, so both challenge types are served by the
 * application's own ports.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { Http2SecureServer } from 'node:http2';
import { lazyModule } from './lazy.js';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type tls from 'node:tls';
import type { CertKeeperOptions } from './config/index.js';
import { AbortedError, InvalidOptionError, ListenError } from './errors.js';
import { listen } from './listen.js';
import { CertKeeper, type ManageEntry } from './manager/keeper.js';
import { DEFAULT_HTTPS_PORT, redirectToHttps } from './http/challenge.js';
import { GracefulCloser } from './http/graceful.js';
import { DEFAULT_CLOSE_TIMEOUT_MS, DEFAULT_HEADERS_TIMEOUT_MS, DEFAULT_HTTP_PORT, DEFAULT_HTTP_REQUEST_TIMEOUT_MS, DEFAULT_IDLE_TIMEOUT_MS, DEFAULT_KEEP_ALIVE_TIMEOUT_MS } from './defaults.js';
import { durationMs, port as validPort } from './validate.js';

// Loaded on first use (lazy.ts): node:http2 is a few ms of start-up that only serveHttps with http2 needs.
const http2 = lazyModule<typeof import('node:http2')>('node:http2');
export { DEFAULT_HTTP_PORT, DEFAULT_HEADERS_TIMEOUT_MS, DEFAULT_KEEP_ALIVE_TIMEOUT_MS, DEFAULT_IDLE_TIMEOUT_MS, DEFAULT_CLOSE_TIMEOUT_MS };

export { DEFAULT_HTTPS_PORT };
/**
 * How often HTTP/1 servers look for connections past those timeouts (Node's
 * default is 30 s, which would let a slow client hold a connection that much
 * longer). Node's HTTP/2 server with allowHTTP1 ignores this option and checks
 * every 30 s.
 */
export const CONNECTIONS_CHECK_INTERVAL_MS = 1_000;

/** A Node request listener; an Express app or `koaApp.callback()` is one. */
export type RequestListener = (req: IncomingMessage, res: ServerResponse) => void;

export interface ServeHttpsServerOptions {
  /** Use this keeper instead of creating one from the options (close() then leaves it open). */
  keeper?: CertKeeper;
  /** Default 443; 0 picks a free port. */
  httpsPort?: number;
  /** Default 80; 0 picks a free port; false opens no HTTP server (no HTTP-01, no redirect). */
  httpPort?: number | false;
  /** Address both servers bind (default: all interfaces). */
  host?: string;
  /** Serve HTTP/2 besides HTTP/1.1 on the HTTPS port (default true; false for an Express app, which cannot answer HTTP/2). */
  http2?: boolean;
  /** Extra TLS options (e.g. minVersion) merged into the keeper's. */
  tls?: tls.TlsOptions;
  headersTimeoutMs?: number;
  requestTimeoutMs?: number;
  keepAliveTimeoutMs?: number;
  /** Inactivity timeout of connections and HTTP/2 sessions; 0 disables it. */
  idleTimeoutMs?: number;
  closeTimeoutMs?: number;
  /** Aborts start-up (listening and obtaining); everything opened so far is closed. */
  signal?: AbortSignal;
}

export type ServeHttpsOptions = CertKeeperOptions & ServeHttpsServerOptions;

export interface HttpsService {
  keeper: CertKeeper;
  httpsServer: https.Server | Http2SecureServer;
  /** Undefined with `httpPort: false`. */
  httpServer: http.Server | undefined;
  /** Graceful and idempotent: stops accepting, lets requests in flight finish (up to closeTimeoutMs), closes a keeper it created. */
  close(): Promise<void>;
}

interface ResolvedServeOptions {
  httpsPort: number;
  httpPort: number | false;
  host: string | undefined;
  http2: boolean;
  tls: tls.TlsOptions;
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  keepAliveTimeoutMs: number;
  idleTimeoutMs: number;
  closeTimeoutMs: number;
}

const SERVE_OPTION_NAMES = [
  'keeper', 'httpsPort', 'httpPort', 'host', 'http2', 'tls', 'headersTimeoutMs', 'requestTimeoutMs',
  'keepAliveTimeoutMs', 'idleTimeoutMs', 'closeTimeoutMs', 'signal',
] as const;

function port(value: unknown, option: string, fallback: number): number {
  return validPort(value, option) ?? fallback;
}

function duration(value: unknown, option: string, fallback: number): number {
  return durationMs(value, option, true, true) ?? fallback;
}

/**
 * Express swaps each request's prototype for its own, built on
 * http.IncomingMessage; under HTTP/2's compatibility API that request cannot
 * be read and the process crashes on the first HTTP/2 request.
 */
function isExpressApp(app: RequestListener): boolean {
  const request = (app as { request?: unknown }).request;
  return typeof request === 'object' && request !== null && Object.prototype.isPrototypeOf.call(http.IncomingMessage.prototype, request);
}

function resolveServeOptions(options: ServeHttpsServerOptions, app: RequestListener): Readonly<ResolvedServeOptions> {
  if (options.http2 !== undefined && typeof options.http2 !== 'boolean') throw new InvalidOptionError('http2', 'must be a boolean');
  const express = isExpressApp(app);
  if (options.http2 === true && express) throw new InvalidOptionError('http2', 'an Express app cannot answer HTTP/2 requests (Node compatibility API); leave http2 unset or false');
  if (options.host !== undefined && typeof options.host !== 'string') throw new InvalidOptionError('host', 'must be a string');
  if (options.tls !== undefined && (typeof options.tls !== 'object' || options.tls === null)) throw new InvalidOptionError('tls', 'must be an object of TLS options');
  if (options.signal !== undefined && !(options.signal instanceof AbortSignal)) throw new InvalidOptionError('signal', 'must be an AbortSignal');
  const headersTimeoutMs = duration(options.headersTimeoutMs, 'headersTimeoutMs', DEFAULT_HEADERS_TIMEOUT_MS);
  const requestTimeoutMs = duration(options.requestTimeoutMs, 'requestTimeoutMs', DEFAULT_HTTP_REQUEST_TIMEOUT_MS);
  // Node requires headersTimeout <= requestTimeout when both are set.
  if (requestTimeoutMs !== 0 && headersTimeoutMs > requestTimeoutMs) throw new InvalidOptionError('headersTimeoutMs', 'must not exceed requestTimeoutMs');
  return Object.freeze({
    httpsPort: port(options.httpsPort, 'httpsPort', DEFAULT_HTTPS_PORT),
    httpPort: options.httpPort === false ? false : port(options.httpPort, 'httpPort', DEFAULT_HTTP_PORT),
    host: options.host === '' ? undefined : options.host,
    http2: options.http2 ?? !express,
    tls: { ...options.tls },
    headersTimeoutMs,
    requestTimeoutMs,
    keepAliveTimeoutMs: duration(options.keepAliveTimeoutMs, 'keepAliveTimeoutMs', DEFAULT_KEEP_ALIVE_TIMEOUT_MS),
    idleTimeoutMs: duration(options.idleTimeoutMs, 'idleTimeoutMs', DEFAULT_IDLE_TIMEOUT_MS),
    closeTimeoutMs: duration(options.closeTimeoutMs, 'closeTimeoutMs', DEFAULT_CLOSE_TIMEOUT_MS),
  });
}

/** Splits serveHttps options from the keeper's, leaving the caller's object untouched. */
function splitOptions(options: ServeHttpsOptions): { serve: ServeHttpsServerOptions; keeper: CertKeeperOptions } {
  const serve: Record<string, unknown> = {};
  const keeper: Record<string, unknown> = { ...options };
  for (const name of SERVE_OPTION_NAMES) {
    if (name in keeper) {
      serve[name] = keeper[name];
      delete keeper[name];
    }
  }
  return { serve: serve as ServeHttpsServerOptions, keeper: keeper as CertKeeperOptions };
}

/** Node's timeouts against slow clients, for the HTTP/1 side of a server. */
function applyTimeouts(server: http.Server | https.Server | Http2SecureServer, o: ResolvedServeOptions): void {
  const s = server as http.Server;
  s.headersTimeout = o.headersTimeoutMs;
  s.requestTimeout = o.requestTimeoutMs;
  s.keepAliveTimeout = o.keepAliveTimeoutMs;
  server.setTimeout(o.idleTimeoutMs);
}

async function listenOn(server: http.Server | https.Server | Http2SecureServer, portNumber: number, host: string | undefined, what: string, signal: AbortSignal | undefined): Promise<void> {
  try {
    await listen(server, { port: portNumber, host, signal });
  } catch (error) {
    if (signal?.aborted && error === signal.reason) throw new AbortedError('serveHttps was aborted');
    const bindError = error as NodeJS.ErrnoException;
    throw new ListenError(`${host ?? '*'}:${portNumber}`, what, { cause: bindError, reason: bindError.code ?? bindError.message });
  }
}

function boundPort(server: { address(): AddressInfo | string | null }, fallback: number): number {
  const address = server.address();
  return address && typeof address === 'object' ? address.port : fallback;
}

/**
 * Serves `app` over HTTPS for `names`: resolves once every name has a
 * certificate and both servers listen; rejects (having closed what it
 * opened) when a server cannot listen or a certificate cannot be obtained.
 */
export async function serveHttps(names: readonly ManageEntry[], app: RequestListener, options: ServeHttpsOptions = {}): Promise<HttpsService> {
  if (!Array.isArray(names) || names.length === 0) throw new InvalidOptionError('names', 'must be a non-empty array of names');
  if (typeof app !== 'function') throw new InvalidOptionError('app', 'must be a request listener (req, res) => void');
  if (typeof options !== 'object' || options === null) throw new InvalidOptionError('options', 'must be an object');
  const split = splitOptions(options);
  const config = resolveServeOptions(split.serve, app);
  const signal = split.serve.signal;
  if (signal?.aborted) throw new AbortedError('serveHttps was aborted');

  const given = split.serve.keeper;
  if (given !== undefined) {
    if (!(given instanceof CertKeeper)) throw new InvalidOptionError('keeper', 'must be a CertKeeper');
    if (Object.keys(split.keeper).length > 0) throw new InvalidOptionError('keeper', `pass either a keeper or keeper options, not both (got ${Object.keys(split.keeper).join(', ')})`);
  }
  // The same bound for the keeper's own drain (orders, storage writes) when serveHttps creates it.
  const keeper = given ?? new CertKeeper(split.serve.closeTimeoutMs === undefined ? split.keeper : { ...split.keeper, closeTimeoutMs: config.closeTimeoutMs });
  const ownsKeeper = given === undefined;

  let httpsServer: https.Server | Http2SecureServer;
  let httpServer: http.Server | undefined;
  const closers: GracefulCloser[] = [];
  let closing: Promise<void> | undefined;

  const close = (): Promise<void> => {
    closing ??= (async () => {
      await Promise.all(closers.map((c) => c.close(config.closeTimeoutMs)));
      if (ownsKeeper) await keeper.close();
    })();
    return closing;
  };

  try {
    // Name the protocols: with none, the keeper's ALPN callback would accept a client's h2 on an HTTP/1-only server.
    const tlsOptions = keeper.tlsOptions({ ...config.tls, ALPNProtocols: config.http2 ? ['h2', 'http/1.1'] : ['http/1.1'] });
    if (config.http2) {
      const h2 = http2.createSecureServer({ ...tlsOptions, allowHTTP1: true });
      const closer = new GracefulCloser(h2);
      // HTTP/1.1 requests arrive as http.IncomingMessage; HTTP/2 ones through the compatible API.
      h2.on('request', closer.wrap(app) as never);
      httpsServer = h2;
      closers.push(closer);
    } else {
      const h1 = https.createServer({ ...tlsOptions, connectionsCheckingInterval: CONNECTIONS_CHECK_INTERVAL_MS });
      const closer = new GracefulCloser(h1);
      h1.on('request', closer.wrap(app));
      httpsServer = h1;
      closers.push(closer);
    }
    applyTimeouts(httpsServer, config);
    // Clients without SNI (https://127.0.0.1/) get the certificate of the address they connected to.
    keeper.attachServer(httpsServer, config.tls);

    if (config.httpPort !== false) {
      const plain = http.createServer({ connectionsCheckingInterval: CONNECTIONS_CHECK_INTERVAL_MS });
      const closer = new GracefulCloser(plain);
      const httpsPortForRedirect = (): number => boundPort(httpsServer, config.httpsPort);
      // Everything that is not a challenge moves to HTTPS, to the port actually bound.
      const redirect: RequestListener = (req, res) => redirectToHttps(req, res, httpsPortForRedirect());
      plain.on('request', closer.wrap(challengeHandlerOrRedirect(keeper, redirect)));
      applyTimeouts(plain, config);
      httpServer = plain;
      closers.push(closer);
      // HTTP first: certificates are obtained only after both ports answer challenges.
      await listenOn(plain, config.httpPort, config.host, 'HTTP', signal);
    }
    await listenOn(httpsServer, config.httpsPort, config.host, 'HTTPS', signal);
    await manageUnlessAborted(keeper, names, signal);
  } catch (error) {
    await close();
    throw error;
  }
  return { keeper, httpsServer, httpServer, close };
}

/** The keeper's challenge handler in front of the redirect; just the redirect when HTTP-01 is disabled. */
function challengeHandlerOrRedirect(keeper: CertKeeper, redirect: RequestListener): RequestListener {
  try {
    return keeper.httpChallengeHandler(redirect);
  } catch (error) {
    if (error instanceof InvalidOptionError && error.option === 'challenges.http01') return redirect;
    throw error;
  }
}

async function manageUnlessAborted(keeper: CertKeeper, names: readonly ManageEntry[], signal: AbortSignal | undefined): Promise<void> {
  if (!signal) return keeper.manageSync(names);
  if (signal.aborted) throw new AbortedError('serveHttps was aborted');
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(new AbortedError('serveHttps was aborted'));
    signal.addEventListener('abort', onAbort, { once: true });
  });
  const managed = keeper.manageSync(names);
  // If the abort wins, manageSync is stopped by close() (an owned keeper) or keeps running on the caller's keeper.
  managed.catch(() => undefined);
  try {
    await Promise.race([managed, aborted]);
  } finally {
    if (onAbort) signal.removeEventListener('abort', onAbort);
  }
}
