/**
 * The HTTP-01 responder (RFC 8555 section 8.3), framework-neutral:
 * `respond(req, res)` answers only a challenge request it can prove is for a
 * token it holds and the identifier it was issued for, and otherwise returns
 * false having written nothing, so the caller's own routing continues untouched.
 *
 * Key authorizations are looked up in memory first, then in shared storage,
 * so any process sharing the storage answers, wherever the load balancer sends the CA.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { InvalidOptionError, StorageNotFoundError } from '../errors.js';
import type { Logger } from '../logger.js';
import { parseIdentifier } from '../names.js';
import { challengeTokenKey } from '../storage/layout.js';
import type { Storage } from '../storage/types.js';
import { challengeKey } from './challenge-key.js';

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
    this.#entries.set(challengeKey(entry.identifier, entry.token), { ...entry });
  }

  get(identifier: string, token: string): HttpChallengeEntry | undefined {
    return this.#entries.get(challengeKey(identifier, token));
  }

  delete(identifier: string, token: string): void {
    this.#entries.delete(challengeKey(identifier, token));
  }

  get size(): number {
    return this.#entries.size;
  }
}

export interface HttpChallengeResponderOptions {
  memory: HttpChallengeMemory;
  /** Shared storage to look tokens up in when they are not in memory. */
  storage?: Storage | undefined;
  /** Issuer keys whose challenge tokens to look for in storage. */
  issuerKeys?: readonly string[] | (() => readonly string[]) | undefined;
  logger?: Logger | undefined;
}

/**
 * Answers an ACME HTTP-01 request and resolves true, or resolves false having
 * written nothing. The one responder type: solvers make it, the middleware
 * adapters and the keeper's handler take it.
 */
export interface HttpChallengeResponder {
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

