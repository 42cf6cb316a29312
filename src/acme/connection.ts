/**
 * One signed-request channel to an ACME CA for one account key, over
 * acme-client. acme-client signs, manages nonces (retrying `badNonce` with the
 * nonce from the error response) and caches the directory; certkeeper sends
 * through its lower API (`api.apiRequest` with no status check), so the raw
 * response, problem document and Retry-After header reach problem.ts, and each
 * call is wrapped in retry.ts.
 */
import type AcmeClient from 'acme-client';
import { acme } from './acme-client.js';

import type { Clock } from '../clock.js';
import type { Logger } from '../logger.js';
import { untilAborted } from '../abort.js';
import { AcmeProblemError, AcmeUnreachableError, CertKeeperError } from '../errors.js';
import { caGate, SharedDirectory, type CaGate } from './ca-gate.js';
import type { AcmeDirectory } from './directories.js';
import { problemFromResponse, toAcmeError, type RawResponse } from './problem.js';
import { withRetry, type RetryPolicy } from './retry.js';
import { installAcmeClientHooks, runWithAcmeLogger, type TrustHandle } from './trust.js';

/**
 * The acme-client internals used here (present in 5.x, not in its typings).
 * Kept in one interface so an upgrade that moves them breaks in one place.
 */
interface AcmeClientInternals {
  api: {
    accountUrl: string | null;
    apiRequest(
      url: string,
      payload: unknown,
      validStatusCodes: number[],
      opts: { includeJwsKid: boolean; includeExternalAccountBinding: boolean },
    ): Promise<RawResponse>;
  };
  http: {
    getDirectory(): Promise<unknown>;
    getNonce(): Promise<string>;
    request(url: string, method: string, opts?: Record<string, unknown>): Promise<RawResponse>;
  };
}

/** Nonces kept from earlier responses; more would only go stale. */
const MAX_POOLED_NONCES = 16;

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
  readonly client: AcmeClient.Client;
  readonly #internals: AcmeClientInternals;
  readonly #options: ConnectionOptions;
  /** Shared with every connection to this CA: the wait it asked for. */
  readonly #gate: CaGate;
  readonly #shared: SharedDirectory;
  #directory: AcmeDirectory | undefined;

  constructor(options: ConnectionOptions) {
    this.#options = options;
    this.directoryUrl = options.directoryUrl;
    installAcmeClientHooks();
    this.client = new acme.Client({
      directoryUrl: options.directoryUrl,
      accountKey: options.accountKeyPem,
      ...(options.accountUrl ? { accountUrl: options.accountUrl } : {}),
      ...(options.externalAccountBinding ? { externalAccountBinding: { ...options.externalAccountBinding } } : {}),
    });
    this.#internals = this.client as unknown as AcmeClientInternals;
    this.#gate = caGate(options.directoryUrl, options.clock);
    this.#shared = options.sharedDirectory ?? new SharedDirectory(options.clock);
    // acme-client's own directory read loses the status and Retry-After: route it through the gate.
    this.#internals.http.getDirectory = () => this.directory();
    this.#poolNonces();
  }

  /**
   * RFC 8555 7.2: every response carries a fresh Replay-Nonce. acme-client
   * ignores it and sends HEAD newNonce before each signed request; keeping
   * them halves the number of round trips. A badNonce answer's nonce is left
   * to acme-client, which retries with it, so no nonce is used twice.
   */
  #poolNonces(): void {
    const http = this.#internals.http;
    const pool: string[] = [];
    const request = http.request.bind(http);
    http.request = async (url, method, opts) => {
      const resp = await request(url, method, opts);
      const nonce = resp.headers['replay-nonce'];
      const data = resp.data as { type?: unknown } | null;
      const badNonce = resp.status === 400 && typeof data === 'object' && data !== null && data.type === 'urn:ietf:params:acme:error:badNonce';
      if (method !== 'head' && !badNonce && typeof nonce === 'string' && nonce !== '') {
        pool.push(nonce);
        if (pool.length > MAX_POOLED_NONCES) pool.shift();
      }
      return resp;
    };
    http.getNonce = async () => pool.pop() ?? this.#newNonce(request);
  }

  /** HEAD newNonce with its status checked: acme-client's own throws a bare Error without it. */
  async #newNonce(request: AcmeClientInternals['http']['request']): Promise<string> {
    const url = (await this.directory()).newNonce;
    const resp = await request(url, 'head');
    if (resp.status >= 400) throw problemFromResponse(resp, url, this.#options.clock.now());
    const nonce = resp.headers['replay-nonce'];
    if (typeof nonce !== 'string' || nonce === '') {
      throw new AcmeProblemError({ type: 'about:blank', status: resp.status, detail: 'newNonce answered without a Replay-Nonce header', url });
    }
    return nonce;
  }

  get accountUrl(): string | undefined {
    return this.#internals.api.accountUrl ?? undefined;
  }

  set accountUrl(url: string | undefined) {
    this.#internals.api.accountUrl = url ?? null;
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
          runWithAcmeLogger(logger, async () => {
            let resp: RawResponse;
            try {
              resp = await untilAborted(this.#internals.http.request(this.directoryUrl, 'get'), signal);
            } catch (error) {
              throw typedError(error, this.directoryUrl, clock.now());
            }
            if (resp.status !== 200) throw problemFromResponse(resp, this.directoryUrl, clock.now());
            return resp.data;
          }),
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
      () =>
        runWithAcmeLogger(logger, async () => {
          let resp: RawResponse;
          try {
            // acme-client adds the EAB field to the payload object: give it a fresh copy each attempt.
            const request = this.#internals.api.apiRequest(url, payload === null ? null : structuredClone(payload), [], {
              includeJwsKid: options.kid !== false,
              includeExternalAccountBinding: options.eab === true,
            });
            resp = await untilAborted(request, options.signal);
          } catch (error) {
            throw typedError(error, url, clock.now());
          }
          if (!options.ok.includes(resp.status)) throw problemFromResponse(resp, url, clock.now());
          return resp;
        }),
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

  /** RFC 8555 key authorization `token.thumbprint` for this account key. */
  async keyAuthorization(token: string): Promise<string> {
    return this.client.getChallengeKeyAuthorization({ token, type: 'http-01', url: '', status: 'pending' });
  }
}

/**
 * toAcmeError, and for anything it cannot name (acme-client's own bare
 * Errors, a malformed response), an AcmeUnreachableError: no untyped error
 * leaves the ACME layer.
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
