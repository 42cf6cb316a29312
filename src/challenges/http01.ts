/**
 * HTTP-01 (RFC 8555 section 8.3). Key authorizations are kept in memory and in
 * storage, so any process sharing the storage can answer the CA's request,
 * wherever the load balancer sends it.
 *
 * The responder is framework-neutral: `respond(req, res)` answers only a
 * challenge request it can prove is for a token it holds and the identifier
 * it was issued for, and otherwise returns false having written nothing, so
 * the caller's own routing continues untouched.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { InvalidOptionError, StorageNotFoundError } from '../errors.js';
import { listenForChallenges, validateListenerPort } from './listen.js';
import type { Logger } from '../logger.js';
import { parseIdentifier } from '../names.js';
import { challengeTokenKey } from '../storage/layout.js';
import type { Storage } from '../storage/types.js';
import type { ChallengeContext, Solver } from './types.js';
import { DEFAULT_HTTP01_PORT } from '../defaults.js';
export { DEFAULT_HTTP01_PORT as DEFAULT_HTTP01_LISTENER_PORT };

export const HTTP_CHALLENGE_PATH_PREFIX = '/.well-known/acme-challenge/';
/** Tokens are base64url (RFC 8555 section 8.1); anything else is not ours. */
const TOKEN_PATTERN = /^[A-Za-z0-9_-]+$/;
/** Real tokens are 43 characters; a generous bound keeps storage lookups cheap. */
const MAX_TOKEN_LENGTH = 256;

export interface HttpChallengeEntry {
  /** Normalised identifier value (the Host the CA will send). */
  identifier: string;
  token: string;
  keyAuthorization: string;
}

/** The key authorizations this process is currently presenting. */
export class HttpChallengeMemory {
  readonly #entries = new Map<string, HttpChallengeEntry>();

  set(entry: HttpChallengeEntry): void {
    this.#entries.set(memoryKey(entry.identifier, entry.token), { ...entry });
  }

  get(identifier: string, token: string): HttpChallengeEntry | undefined {
    return this.#entries.get(memoryKey(identifier, token));
  }

  delete(identifier: string, token: string): void {
    this.#entries.delete(memoryKey(identifier, token));
  }

  get size(): number {
    return this.#entries.size;
  }
}

function memoryKey(identifier: string, token: string): string {
  return `${identifier}\n${token}`;
}

export interface HttpChallengeResponderOptions {
  memory: HttpChallengeMemory;
  /** Shared storage to look tokens up in when they are not in memory. */
  storage?: Storage | undefined;
  /** Issuer keys whose challenge tokens to look for in storage. */
  issuerKeys?: readonly string[] | (() => readonly string[]) | undefined;
  logger?: Logger | undefined;
}

export interface HttpChallengeResponder {
  /** Answers an ACME HTTP-01 request and returns true, or returns false having written nothing. */
  respond(req: IncomingMessage, res: ServerResponse): Promise<boolean>;
}

/** The token of a challenge request path, or undefined when the path is anything else. */
export function challengeTokenFromUrl(url: string | undefined): string | undefined {
  if (url === undefined || !url.startsWith(HTTP_CHALLENGE_PATH_PREFIX)) return undefined;
  const query = url.indexOf('?');
  const token = url.slice(HTTP_CHALLENGE_PATH_PREFIX.length, query === -1 ? undefined : query);
  if (token.length === 0 || token.length > MAX_TOKEN_LENGTH || !TOKEN_PATTERN.test(token)) return undefined;
  return token;
}

/**
 * The identifier a Host header (or HTTP/2 :authority) names: port stripped,
 * IPv6 brackets removed, normalised. Undefined when it is not a valid name.
 */
export function identifierFromHost(host: string | undefined): string | undefined {
  if (host === undefined || host.length === 0 || host.length > 300) return undefined;
  let bare: string;
  if (host.startsWith('[')) {
    const close = host.indexOf(']');
    if (close === -1) return undefined;
    const rest = host.slice(close + 1);
    if (rest !== '' && !/^:\d{1,5}$/.test(rest)) return undefined;
    bare = host.slice(1, close);
  } else {
    const colon = host.indexOf(':');
    if (colon !== -1) {
      if (!/^:\d{1,5}$/.test(host.slice(colon))) return undefined;
      bare = host.slice(0, colon);
    } else {
      bare = host;
    }
  }
  try {
    const id = parseIdentifier(bare);
    return id.wildcard ? undefined : id.value;
  } catch {
    return undefined;
  }
}

function hostOf(req: IncomingMessage): string | undefined {
  const h2 = req.headers[':authority'];
  if (typeof h2 === 'string' && h2.length > 0) return h2;
  return req.headers.host;
}

export function createHttpChallengeResponder(options: HttpChallengeResponderOptions): HttpChallengeResponder {
  const { memory, storage, logger } = options;
  if (!(memory instanceof HttpChallengeMemory)) throw new InvalidOptionError('memory', 'must be an HttpChallengeMemory');
  const issuerKeys = typeof options.issuerKeys === 'function' ? options.issuerKeys : () => (options.issuerKeys as readonly string[] | undefined) ?? [];
  const log = logger?.child({ component: 'http-01' });

  async function lookUp(identifier: string, token: string): Promise<HttpChallengeEntry | undefined> {
    const held = memory.get(identifier, token);
    if (held) return held;
    if (!storage) return undefined;
    for (const issuerKey of new Set(issuerKeys())) {
      let raw: Buffer;
      try {
        raw = await storage.load(challengeTokenKey(issuerKey, identifier, token));
      } catch (error) {
        if (!(error instanceof StorageNotFoundError)) log?.warn({ err: error, issuerKey }, 'could not read a challenge token from storage');
        continue;
      }
      const entry = parseStoredEntry(raw);
      // The key sanitises its components, so compare the stored values too.
      if (entry && entry.identifier === identifier && entry.token === token) return entry;
    }
    return undefined;
  }

  return {
    async respond(req, res) {
      if (req.method !== 'GET' && req.method !== 'HEAD') return false;
      const token = challengeTokenFromUrl(req.url);
      if (token === undefined) return false;
      const identifier = identifierFromHost(hostOf(req));
      if (identifier === undefined) return false;
      const entry = await lookUp(identifier, token);
      if (!entry || res.headersSent || res.writableEnded) return false;
      const body = Buffer.from(entry.keyAuthorization, 'utf8');
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length, 'cache-control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : body);
      log?.debug({ identifier }, 'answered HTTP-01 challenge');
      return true;
    },
  };
}

function parseStoredEntry(raw: Buffer): HttpChallengeEntry | undefined {
  try {
    const value = JSON.parse(raw.toString('utf8')) as Partial<HttpChallengeEntry>;
    if (typeof value.identifier === 'string' && typeof value.token === 'string' && typeof value.keyAuthorization === 'string') {
      return { identifier: value.identifier, token: value.token, keyAuthorization: value.keyAuthorization };
    }
  } catch {
    // corrupt entry: treat as absent
  }
  return undefined;
}

export interface Http01ListenerOptions {
  /** Default 80; 0 picks a free port (tests). */
  port?: number | undefined;
  /** Address to bind; '' or undefined = all interfaces. */
  host?: string | undefined;
  logger?: Logger | undefined;
}

/**
 * A bare HTTP server answering only challenge requests (404 otherwise), for
 * users with no server of their own on the HTTP-01 port.
 */
export class Http01Listener {
  readonly #responder: HttpChallengeResponder;
  readonly #port: number;
  readonly #host: string | undefined;
  readonly #log: Logger | undefined;
  #server: http.Server | undefined;

  constructor(responder: HttpChallengeResponder, options: Http01ListenerOptions = {}) {
    const port = options.port ?? DEFAULT_HTTP01_PORT;
    this.#responder = responder;
    this.#port = validateListenerPort(port, 'http01.port');
    this.#host = options.host === '' ? undefined : options.host;
    this.#log = options.logger?.child({ component: 'http-01-listener' });
  }

  get listening(): boolean {
    return this.#server?.listening ?? false;
  }

  /** The bound address, once listening. */
  address(): AddressInfo | undefined {
    const address = this.#server?.address();
    return address && typeof address === 'object' ? address : undefined;
  }

  async listen(): Promise<void> {
    if (this.#server) return;
    const server = http.createServer((req, res) => {
      this.#responder.respond(req, res).then(
        (answered) => {
          if (!answered && !res.headersSent) {
            res.writeHead(404, { 'content-type': 'text/plain', 'content-length': 10 });
            res.end('Not Found\n');
          }
        },
        (error: unknown) => {
          this.#log?.warn({ err: error }, 'HTTP-01 responder failed');
          if (!res.headersSent) res.writeHead(500);
          res.end();
        },
      );
    });
    // A CA's validator sends one small request; slow clients get little room.
    server.headersTimeout = 10_000;
    server.requestTimeout = 15_000;
    server.keepAliveTimeout = 5_000;
    this.#server = server;
    try {
      await listenForChallenges(server, this.#port, this.#host);
    } catch (error) {
      this.#server = undefined;
      throw error;
    }
    server.on('error', (error) => this.#log?.warn({ err: error }, 'HTTP-01 listener error'));
    this.#log?.info({ port: this.address()?.port }, 'HTTP-01 listener started');
  }

  async close(): Promise<void> {
    const server = this.#server;
    if (!server) return;
    this.#server = undefined;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
    this.#log?.info('HTTP-01 listener stopped');
  }
}

export interface Http01SolverOptions {
  /** Shared storage: tokens are filed there so peer processes can answer. */
  storage?: Storage | undefined;
  /** Share one memory with a responder mounted elsewhere; default a new one. */
  memory?: HttpChallengeMemory | undefined;
  /** Issuer keys a responder should look for in storage besides those this solver has presented for. */
  issuerKeys?: readonly string[] | undefined;
  /** Standalone listener port (default 80; 0 = any free port). */
  port?: number | undefined;
  /** Standalone listener address ('' = all interfaces, the default). */
  host?: string | undefined;
  /** Open the standalone listener while challenges are pending (default true). False when the user mounted the responder. */
  listener?: boolean | undefined;
  logger?: Logger | undefined;
}

/**
 * Presents HTTP-01 challenges: files the key authorization in memory and in
 * storage, and (unless disabled) keeps a standalone listener open while any
 * challenge is pending.
 */
export class Http01Solver implements Solver {
  readonly memory: HttpChallengeMemory;
  /** Answers from this solver's memory and storage; mount it in your own server. */
  readonly responder: HttpChallengeResponder;
  readonly #storage: Storage | undefined;
  readonly #issuerKeys: Set<string>;
  readonly #listener: Http01Listener | undefined;
  readonly #log: Logger | undefined;
  #listenerDisabled = false;
  #pending = 0;
  /** Listener start/stop runs one at a time, so a close never races a start. */
  #listenerOps: Promise<void> = Promise.resolve();

  constructor(options: Http01SolverOptions = {}) {
    this.memory = options.memory ?? new HttpChallengeMemory();
    this.#storage = options.storage;
    this.#issuerKeys = new Set(options.issuerKeys ?? []);
    this.#log = options.logger?.child({ component: 'http-01' });
    if (options.listener !== undefined && typeof options.listener !== 'boolean') throw new InvalidOptionError('http01.listener', 'must be a boolean');
    this.responder = createHttpChallengeResponder({
      memory: this.memory,
      storage: this.#storage,
      issuerKeys: () => [...this.#issuerKeys],
      logger: options.logger,
    });
    this.#listener =
      options.listener === false ? undefined : new Http01Listener(this.responder, { port: options.port, host: options.host, logger: options.logger });
  }

  /** The standalone listener's address while it is open. */
  listenerAddress(): AddressInfo | undefined {
    return this.#listener?.address();
  }

  async present(challenge: ChallengeContext): Promise<void> {
    const identifier = challenge.identifier.value;
    const entry: HttpChallengeEntry = { identifier, token: challenge.token, keyAuthorization: challenge.keyAuthorization };
    this.#issuerKeys.add(challenge.issuerKey);
    this.#pending++;
    this.memory.set(entry);
    if (this.#storage) {
      await this.#storage.store(challengeTokenKey(challenge.issuerKey, identifier, challenge.token), Buffer.from(JSON.stringify(entry)));
    }
    if (this.#listener && !this.#listenerDisabled) await this.#runListenerOp(() => this.#listener?.listen());
    this.#log?.debug({ identifier }, 'HTTP-01 challenge presented');
  }

  async cleanUp(challenge: ChallengeContext): Promise<void> {
    const identifier = challenge.identifier.value;
    this.memory.delete(identifier, challenge.token);
    this.#pending = Math.max(0, this.#pending - 1);
    try {
      if (this.#storage) await this.#storage.delete(challengeTokenKey(challenge.issuerKey, identifier, challenge.token));
    } catch (error) {
      // A leftover token file is harmless (it answers nothing once the authorization is done).
      this.#log?.warn({ err: error, identifier }, 'could not delete a challenge token from storage');
    }
    if (this.#listener && this.#pending === 0) {
      await this.#runListenerOp(async () => {
        if (this.#pending === 0) await this.#listener?.close();
      });
    }
  }

  /**
   * Look for challenge tokens of this issuer in storage too, so this process
   * answers challenges that a peer sharing the storage started, before (or
   * without) presenting any itself.
   */
  addIssuerKey(issuerKey: string): void {
    this.#issuerKeys.add(issuerKey);
  }

  /** Never open the standalone listener again: the user's own server answers through `responder`. */
  disableListener(): void {
    this.#listenerDisabled = true;
  }

  /** Closes the standalone listener. */
  async close(): Promise<void> {
    if (this.#listener) await this.#runListenerOp(() => this.#listener?.close());
  }

  #runListenerOp(op: () => Promise<void> | undefined): Promise<void> {
    const run = this.#listenerOps.then(op);
    this.#listenerOps = run.catch(() => undefined);
    return run;
  }
}
