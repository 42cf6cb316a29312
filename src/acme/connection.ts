/**
 * One signed-request channel to an ACME CA for one account key (RFC 8555 6):
 * JWS signing (jws.ts) over node:https (http.ts). Nonces come from the
 * Replay-Nonce header of earlier answers, a HEAD newNonce only when none is
 * kept; a badNonce answer is retried at once with the nonce it carries. Each
 * call is wrapped in retry.ts, and the raw response, problem document and
 * Retry-After header reach problem.ts.
 */
import type { Clock } from '../clock.js';
import type { Logger } from '../logger.js';
import { untilAborted } from '../abort.js';
import { AcmeProblemError, AcmeUnreachableError, CertKeeperError } from '../errors.js';
import { caGate, SharedDirectory, type CaGate } from './ca-gate.js';
import type { AcmeDirectory } from './directories.js';
import { acmeHttp } from './http.js';
import { AccountKey } from './jws.js';
import { ACME_ERROR, problemFromResponse, toAcmeError, type RawResponse } from './problem.js';
import { withRetry, type RetryPolicy } from './retry.js';
import type { TrustHandle } from './trust.js';

/** Nonces kept from earlier responses; more would only go stale. */
const MAX_POOLED_NONCES = 16;
/** badNonce answers retried within one attempt, each with the nonce of the answer (RFC 8555 6.5). */
const MAX_BAD_NONCE_RETRIES = 5;

export interface ConnectionOptions {
  directoryUrl: string;
  accountKeyPem: string;
  accountUrl?: string | undefined;
  externalAccountBinding?: { kid: string; hmacKey: string } | undefined;
  trust: TrustHandle;
  logger: Logger;
  clock: Clock;
  retryPolicy: Readonly<RetryPolicy>;
  /** One issuer's connections share their directory read; without it the connection reads its own. */
  sharedDirectory?: SharedDirectory | undefined;
}

export interface PostOptions {
  /** Statuses that count as success. */
  ok: readonly number[];
  /** Short operation name for logs and retry messages. */
  what: string;
  /** Sign with the account URL (`kid`); false sends the JWK (newAccount, revocation by key). */
  kid?: boolean;
  eab?: boolean;
  /** False for best-effort calls (e.g. deactivation after a failure): one attempt only. */
  retry?: boolean;
  signal?: AbortSignal | undefined;
}

export class AcmeConnection {
  readonly directoryUrl: string;
  /** The account URL (`kid`); undefined until the account is registered. */
  accountUrl: string | undefined;
  readonly #key: AccountKey;
  readonly #options: ConnectionOptions;
  /** Shared with every connection to this CA: the wait it asked for. */
  readonly #gate: CaGate;
  readonly #shared: SharedDirectory;
  readonly #nonces: string[];
  #directory: AcmeDirectory | undefined;

  constructor(options: ConnectionOptions) {
    this.#options = options;
    this.directoryUrl = options.directoryUrl;
    this.accountUrl = options.accountUrl;
    this.#key = new AccountKey(options.accountKeyPem);
    this.#gate = caGate(options.directoryUrl, options.clock);
    this.#shared = options.sharedDirectory ?? new SharedDirectory(options.clock);
    this.#nonces = this.#shared.nonces;
  }

  /** RFC 8555 7.2: every answer carries a fresh nonce; keeping them saves a HEAD newNonce per request. */
  #keepNonce(resp: RawResponse): void {
    const nonce = resp.headers['replay-nonce'];
    if (typeof nonce !== 'string' || nonce === '') return;
    this.#nonces.push(nonce);
    if (this.#nonces.length > MAX_POOLED_NONCES) this.#nonces.shift();
  }

  /**
   * newNonce with its status checked. GET (RFC 8555 7.2: answered 204), not HEAD: a HEAD answer without
   * Content-Length (Pebble's, Boulder's) makes Node close the socket, so the first POST opened a second
   * TLS connection. A server refusing GET (405) is asked with HEAD.
   */
  async #newNonce(signal: AbortSignal | undefined): Promise<string> {
    const url = (await this.directory(signal)).newNonce;
    let resp = await acmeHttp(url, 'GET', { signal, logger: this.#options.logger });
    if (resp.status === 405) resp = await acmeHttp(url, 'HEAD', { signal, logger: this.#options.logger });
    if (resp.status >= 400) throw problemFromResponse(resp, url, this.#options.clock.now());
    const nonce = resp.headers['replay-nonce'];
    if (typeof nonce !== 'string' || nonce === '') {
      throw new AcmeProblemError({ type: 'about:blank', status: resp.status, detail: 'newNonce answered without a Replay-Nonce header', url });
    }
    return nonce;
  }

  /** The directory, read once for the connections sharing it (with retries, through the CA's Retry-After). */
  async directory(signal?: AbortSignal): Promise<AcmeDirectory> {
    const directory = await this.#shared.get((s) => this.#readDirectory(s), signal);
    if (this.#directory !== directory) {
      this.#gate.learn(directory);
      for (const value of Object.values(directory)) {
        if (typeof value === 'string' && value.startsWith('https://')) this.#options.trust.addOrigin(value);
      }
      this.#directory = directory;
    }
    return directory;
  }

  async #readDirectory(signal: AbortSignal | undefined): Promise<AcmeDirectory> {
    const { clock, logger, retryPolicy } = this.#options;
    let dir: unknown;
    try {
      dir = await withRetry(
        () =>
          (async () => {
            let resp: RawResponse;
            try {
              resp = await untilAborted(acmeHttp(this.directoryUrl, 'GET', { accept: 'application/json', signal, logger }), signal);
            } catch (error) {
              throw typedError(error, this.directoryUrl, clock.now());
            }
            if (resp.status !== 200) throw problemFromResponse(resp, this.directoryUrl, clock.now());
            return resp.data;
          })(),
        { policy: retryPolicy, clock, signal, logger, what: 'directory', gate: this.#gate },
      );
    } catch (error) {
      // An error status from the directory is no ACME problem document; a wait the CA asked for stays typed as such.
      if (error instanceof AcmeProblemError) {
        throw new AcmeUnreachableError(`Could not read the ACME directory at ${this.directoryUrl}: HTTP ${error.status ?? 'error'}`, { cause: error });
      }
      throw error;
    }
    if (typeof dir !== 'object' || dir === null || typeof (dir as AcmeDirectory).newOrder !== 'string' || typeof (dir as AcmeDirectory).newNonce !== 'string') {
      throw new AcmeUnreachableError(`${this.directoryUrl} did not answer with an ACME directory`);
    }
    return dir as AcmeDirectory;
  }

  /**
   * One signed POST (payload null = POST-as-GET), retried by policy: each
   * attempt is signed again with a fresh nonce. Throws AcmeProblemError for
   * a status outside `ok`.
   */
  async post(url: string, payload: Record<string, unknown> | null, options: PostOptions): Promise<RawResponse> {
    const { clock, logger, retryPolicy } = this.#options;
    return withRetry(
      async () => {
        let resp: RawResponse;
        try {
          resp = await untilAborted(this.#send(url, payload, options), options.signal);
        } catch (error) {
          throw typedError(error, url, clock.now());
        }
        if (!options.ok.includes(resp.status)) throw problemFromResponse(resp, url, clock.now());
        return resp;
      },
      {
        policy: options.retry === false ? { ...retryPolicy, maxAttempts: 1 } : retryPolicy,
        clock,
        signal: options.signal,
        logger,
        what: options.what,
        gate: this.#gate,
      },
    );
  }

  /** One signed request; a badNonce answer is sent again with the nonce it carried, never with a used one. */
  async #send(url: string, payload: Record<string, unknown> | null, options: PostOptions): Promise<RawResponse> {
    const { logger } = this.#options;
    const kid = options.kid === false ? undefined : this.accountUrl;
    if (options.kid !== false && kid === undefined) throw new Error(`no account URL to sign ${options.what} with; register the account first`);
    let body = payload;
    if (options.eab === true && this.#options.externalAccountBinding && payload !== null) {
      const { kid: eabKid, hmacKey } = this.#options.externalAccountBinding;
      body = { ...payload, externalAccountBinding: this.#key.externalAccountBinding(url, eabKid, hmacKey) };
    }
    let nonce = this.#nonces.pop() ?? (await this.#newNonce(options.signal));
    for (let badNonces = 0; ; badNonces++) {
      const resp = await acmeHttp(url, 'POST', { body: this.#key.sign(url, body, nonce, kid), signal: options.signal, logger });
      const fresh = resp.headers['replay-nonce'];
      if (!isBadNonce(resp) || badNonces >= MAX_BAD_NONCE_RETRIES) {
        this.#keepNonce(resp);
        return resp;
      }
      logger.debug({ operation: options.what, badNonces: badNonces + 1 }, 'badNonce: sending again with the nonce of the answer');
      nonce = typeof fresh === 'string' && fresh !== '' ? fresh : (this.#nonces.pop() ?? (await this.#newNonce(options.signal)));
    }
  }

  /** RFC 8555 key authorization `token.thumbprint` for this account key. */
  async keyAuthorization(token: string): Promise<string> {
    return this.#key.keyAuthorization(token);
  }
}

function isBadNonce(resp: RawResponse): boolean {
  const data = resp.data as { type?: unknown } | null;
  return resp.status === 400 && typeof data === 'object' && data !== null && data.type === `${ACME_ERROR}badNonce`;
}

/**
 * toAcmeError, and for anything it cannot name (a malformed response), an
 * AcmeUnreachableError: no untyped error leaves the ACME layer.
 */
function typedError(error: unknown, url: string, now: number): CertKeeperError {
  const mapped = toAcmeError(error, url, now);
  if (mapped instanceof CertKeeperError) return mapped;
  let where = 'the ACME server';
  try {
    where = new URL(url).origin;
  } catch {
    // keep the generic name
  }
  const reason = mapped instanceof Error ? mapped.message : String(mapped);
  return new AcmeUnreachableError(`ACME request to ${where} failed: ${reason.slice(0, 200)}`, { cause: mapped });
}

export { untilAborted } from '../abort.js';
