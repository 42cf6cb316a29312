/**
 * AcmeIssuer: an Issuer over an ACME CA (Let's Encrypt, ZeroSSL, Google,
 * step-ca, Pebble...). Accounts live in storage; solvers answer challenges.
 */
import { setMaxListeners } from 'node:events';
import type AcmeClient from 'acme-client';
import { lazyModule } from '../lazy.js';

const acme = lazyModule<typeof AcmeClient>('acme-client');
import { systemClock, type Clock } from '../clock.js';
import { ClosedError, InvalidNameError, InvalidOptionError, throwIfAborted } from '../errors.js';
import type { Logger } from '../logger.js';
import { durationMs, email as validEmail, externalAccountBinding as validEab, optionalBoolean, pemCertificates } from '../validate.js';
import { validateLogger } from '../logger.js';
import { parseIdentifier, type Identifier } from '../names.js';
import { CHALLENGE_TYPES, type ChallengeType, type Solver } from '../challenges/types.js';
import { issuerKeyFromDirectoryUrl } from '../storage/layout.js';
import type { Storage } from '../storage/types.js';
import { createAccountKeyPem, ensureAccount, type ExternalAccountBinding, type StoredAccount } from '../acme/account.js';
import { certId, fetchRenewalInfo } from '../acme/ari.js';
import { caGate, SharedDirectory } from '../acme/ca-gate.js';
import { AcmeConnection, untilAborted, type AcmeDirectory } from '../acme/connection.js';
import { resolveDirectoryUrl, DIRECTORY_PRESETS, type DirectoryPreset } from '../acme/directories.js';
import {
  DEFAULT_MAX_POLL_INTERVAL_MS,
  DEFAULT_ORDER_TIMEOUT_MS,
  DEFAULT_POLL_INTERVAL_MS,
  runOrder,
} from '../acme/order.js';
import { DEFAULT_RETRY_POLICY, type RetryPolicy } from '../acme/retry.js';
import { TrustHandle } from '../acme/trust.js';
import { isProblem } from '../acme/problem.js';
import type { IssueRequest, IssuedCertificate, Issuer, RenewalInfo, RevocationReason } from './types.js';
import { DEFAULT_CA, DEFAULT_CHALLENGE_PREFERENCE } from '../defaults.js';

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/;
export const REVOCATION_REASONS: readonly RevocationReason[] = [0, 1, 3, 4, 5, 9];

export interface AcmeIssuerOptions {
  /** Directory URL (https) of the CA; wins over `ca`. */
  directoryUrl?: string;
  /** A preset: letsencrypt (default), letsencrypt-staging, zerossl, google, google-staging. */
  ca?: DirectoryPreset;
  /** Extra CA certificates (PEM) to trust for the directory's own TLS, e.g. step-ca or Pebble. */
  caCertificates?: string | string[];
  email?: string;
  /** Must be true to register an account: it accepts the CA's terms of service. */
  agreeToTerms?: boolean;
  externalAccountBinding?: ExternalAccountBinding;
  storage: Storage;
  solvers: Partial<Record<ChallengeType, Solver>>;
  challengePreference?: ChallengeType[];
  /** Issuer common name of the preferred alternate chain; the default chain when none matches. */
  preferredChain?: string;
  logger?: Logger;
  clock?: Clock;
  orderTimeoutMs?: number;
  pollIntervalMs?: number;
  maxPollIntervalMs?: number;
  /** Bounded retries of each ACME request (badNonce, 429/503 with Retry-After, network errors). */
  retry?: Partial<RetryPolicy>;
}

export interface ResolvedAcmeIssuerConfig {
  readonly directoryUrl: string;
  readonly caCertificates: readonly string[];
  readonly email: string | undefined;
  readonly agreeToTerms: boolean;
  readonly externalAccountBinding: Readonly<ExternalAccountBinding> | undefined;
  readonly storage: Storage;
  readonly solvers: Readonly<Partial<Record<ChallengeType, Solver>>>;
  readonly challengePreference: readonly ChallengeType[];
  readonly preferredChain: string | undefined;
  readonly logger: Logger | undefined;
  readonly clock: Clock;
  readonly orderTimeoutMs: number;
  readonly pollIntervalMs: number;
  readonly maxPollIntervalMs: number;
  readonly retry: Readonly<RetryPolicy>;
}


function positiveNumber(value: unknown, option: string, fallback: number): number {
  return durationMs(value, option) ?? fallback;
}

/** Validates AcmeIssuerOptions into a frozen config; never mutates the caller's object. */
export function resolveAcmeIssuerOptions(options: AcmeIssuerOptions): ResolvedAcmeIssuerConfig {
  if (typeof options !== 'object' || options === null) throw new InvalidOptionError('options', 'must be an object');
  const directoryUrl =
    options.directoryUrl !== undefined
      ? resolveDirectoryUrl(options.directoryUrl, 'directoryUrl')
      : options.ca !== undefined
        ? resolveDirectoryUrl(options.ca, 'ca')
        : DIRECTORY_PRESETS[DEFAULT_CA];

  const cas = pemCertificates(options.caCertificates, 'caCertificates');
  const email = validEmail(options.email, 'email');
  const agreeToTerms = optionalBoolean(options.agreeToTerms, 'agreeToTerms') ?? false;
  const eab = validEab(options.externalAccountBinding, 'externalAccountBinding');

  if (typeof options.storage !== 'object' || options.storage === null || typeof options.storage.lock !== 'function') {
    throw new InvalidOptionError('storage', 'must be a Storage');
  }
  if (typeof options.solvers !== 'object' || options.solvers === null) {
    throw new InvalidOptionError('solvers', 'must be an object mapping challenge types to solvers');
  }
  const solvers: Partial<Record<ChallengeType, Solver>> = {};
  for (const [type, solver] of Object.entries(options.solvers)) {
    if (!(CHALLENGE_TYPES as readonly string[]).includes(type)) throw new InvalidOptionError('solvers', `unknown challenge type "${type}"`);
    if (solver === undefined) continue;
    if (typeof solver?.present !== 'function' || typeof solver.cleanUp !== 'function') {
      throw new InvalidOptionError(`solvers.${type}`, 'must have present() and cleanUp()');
    }
    solvers[type as ChallengeType] = solver;
  }

  const preference = options.challengePreference ?? DEFAULT_CHALLENGE_PREFERENCE;
  if (!Array.isArray(preference) || preference.length === 0 || preference.some((t) => !CHALLENGE_TYPES.includes(t))) {
    throw new InvalidOptionError('challengePreference', `must list challenge types among ${CHALLENGE_TYPES.join(', ')}`);
  }
  if (options.preferredChain !== undefined && (typeof options.preferredChain !== 'string' || options.preferredChain === '')) {
    throw new InvalidOptionError('preferredChain', 'must be a non-empty issuer common name');
  }
  const retry: RetryPolicy = { ...DEFAULT_RETRY_POLICY };
  for (const [key, value] of Object.entries(options.retry ?? {})) {
    if (!(key in DEFAULT_RETRY_POLICY)) throw new InvalidOptionError(`retry.${key}`, 'is not a retry setting');
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) throw new InvalidOptionError(`retry.${key}`, 'must be a non-negative number');
    retry[key as keyof RetryPolicy] = value;
  }
  if (retry.maxAttempts < 1) throw new InvalidOptionError('retry.maxAttempts', 'must be at least 1');

  return Object.freeze({
    directoryUrl,
    caCertificates: Object.freeze([...cas]),
    email,
    agreeToTerms,
    externalAccountBinding: eab,
    storage: options.storage,
    solvers: Object.freeze(solvers),
    challengePreference: Object.freeze([...new Set(preference)]),
    preferredChain: options.preferredChain,
    logger: options.logger === undefined ? undefined : validateLogger(options.logger),
    clock: options.clock ?? systemClock,
    orderTimeoutMs: positiveNumber(options.orderTimeoutMs, 'orderTimeoutMs', DEFAULT_ORDER_TIMEOUT_MS),
    pollIntervalMs: positiveNumber(options.pollIntervalMs, 'pollIntervalMs', DEFAULT_POLL_INTERVAL_MS),
    maxPollIntervalMs: positiveNumber(options.maxPollIntervalMs, 'maxPollIntervalMs', DEFAULT_MAX_POLL_INTERVAL_MS),
    retry: Object.freeze(retry),
  });
}

const silentLogger: Logger = {
  trace() {},
  debug() {},
  info() {},
  warn() {},
  error() {},
  fatal() {},
  child: () => silentLogger,
};

/** Re-validates identifiers before anything reaches the CA. */
function checkIdentifiers(identifiers: readonly Identifier[]): Identifier[] {
  if (!Array.isArray(identifiers) || identifiers.length === 0) throw new InvalidNameError('', 'at least one identifier is required');
  return identifiers.map((id) => {
    const parsed = parseIdentifier(id?.value);
    if (parsed.value !== id.value || parsed.type !== id.type) {
      throw new InvalidNameError(String(id?.value), 'is not a normalised identifier (use parseIdentifier)');
    }
    return parsed;
  });
}

export class AcmeIssuer implements Issuer {
  readonly key: string;
  readonly config: ResolvedAcmeIssuerConfig;
  readonly #log: Logger;
  readonly #trust: TrustHandle;
  #account: Promise<StoredAccount> | undefined;
  #connection: AcmeConnection | undefined;
  #directoryProbe: AcmeConnection | undefined;
  /** Every connection of this issuer reads the directory once, together. */
  #directories: SharedDirectory | undefined;
  #closed = false;
  /** Fires on close(), stopping every operation in flight. */
  readonly #closing = new AbortController();
  readonly #inFlight = new Set<Promise<unknown>>();

  constructor(options: AcmeIssuerOptions) {
    // Every operation in flight listens on this long-lived signal; more than 10 at once is normal, not a leak.
    setMaxListeners(0, this.#closing.signal);
    this.config = resolveAcmeIssuerOptions(options);
    this.key = issuerKeyFromDirectoryUrl(this.config.directoryUrl);
    this.#log = (this.config.logger ?? silentLogger).child({ component: 'acme', issuer: this.key });
    this.#trust = new TrustHandle(this.config.caCertificates);
    this.#trust.addOrigin(this.config.directoryUrl);
  }

  get directoryUrl(): string {
    return this.config.directoryUrl;
  }

  #connect(keyPem: string, accountUrl?: string): AcmeConnection {
    return new AcmeConnection({
      directoryUrl: this.config.directoryUrl,
      accountKeyPem: keyPem,
      accountUrl,
      externalAccountBinding: this.config.externalAccountBinding,
      trust: this.#trust,
      logger: this.#log,
      clock: this.config.clock,
      retryPolicy: this.config.retry,
      sharedDirectory: (this.#directories ??= new SharedDirectory(this.config.clock)),
    });
  }

  /** The account (loaded or registered once per issuer instance) and a connection signed by it. */
  async #session(
    signal: AbortSignal | undefined,
    staleAccountUrl?: string,
  ): Promise<{ conn: AcmeConnection; directory: AcmeDirectory; account: StoredAccount }> {
    if (this.#closed) throw new ClosedError('AcmeIssuer');
    if (staleAccountUrl !== undefined && (await this.#account?.catch(() => undefined))?.url === staleAccountUrl) {
      this.#account = undefined;
    }
    if (!this.#account) {
      const pending = ensureAccount(
        {
          storage: this.config.storage,
          issuerKey: this.key,
          directoryUrl: this.config.directoryUrl,
          email: this.config.email,
          agreeToTerms: this.config.agreeToTerms,
          externalAccountBinding: this.config.externalAccountBinding,
          logger: this.#log,
        },
        (keyPem, accountUrl) => this.#connect(keyPem, accountUrl),
        // Shared by concurrent callers: only close() stops it; each caller stops waiting on its own signal.
        this.#closing.signal,
        staleAccountUrl,
      );
      this.#account = pending;
      // A failed registration is not cached: the next call tries again.
      pending.catch(() => {
        if (this.#account === pending) this.#account = undefined;
      });
    }
    const account = await untilAborted(this.#account, signal);
    if (!this.#connection || this.#connection.accountUrl !== account.url) {
      this.#connection = this.#connect(account.keyPem, account.url);
    }
    const directory = await this.#connection.directory(signal);
    return { conn: this.#connection, directory, account };
  }

  issue(request: IssueRequest): Promise<IssuedCertificate> {
    return this.#track(request.signal, (signal) => this.#issue({ ...request, signal }));
  }

  async #issue(request: IssueRequest): Promise<IssuedCertificate> {
    throwIfAborted(request.signal);
    const identifiers = checkIdentifiers(request.identifiers);
    if (!Buffer.isBuffer(request.csr) || request.csr.length === 0) throw new InvalidOptionError('csr', 'must be a non-empty Buffer');
    try {
      return await this.#order(request, identifiers, await this.#session(request.signal));
    } catch (error) {
      // The CA forgot the account (a test CA restarted, or an operator deleted it): register the key again, once.
      if (!isProblem(error, 'accountDoesNotExist')) throw error;
      const stale = (await this.#account?.catch(() => undefined))?.url;
      this.#log.warn({ account: stale }, 'the CA does not know the stored ACME account; registering again');
      return await this.#order(request, identifiers, await this.#session(request.signal, stale));
    }
  }

  async #order(
    request: IssueRequest,
    identifiers: Identifier[],
    { conn, directory, account }: { conn: AcmeConnection; directory: AcmeDirectory; account: StoredAccount },
  ): Promise<IssuedCertificate> {
    let replaces: string | undefined;
    if (request.replacesCertificatePem !== undefined && directory.renewalInfo !== undefined) {
      try {
        replaces = certId(request.replacesCertificatePem);
      } catch (error) {
        this.#log.warn({ err: error }, 'cannot compute the ARI certificate ID of the replaced certificate; ordering without replaces');
      }
    }
    const names = identifiers.map((i) => i.value);
    this.#log.debug({ names }, 'ordering certificate');
    const result = await runOrder(
      {
        conn,
        directory,
        issuerKey: this.key,
        solvers: this.config.solvers,
        challengePreference: this.config.challengePreference,
        preferredChain: this.config.preferredChain,
        clock: this.config.clock,
        logger: this.#log,
        orderTimeoutMs: this.config.orderTimeoutMs,
        pollIntervalMs: this.config.pollIntervalMs,
        maxPollIntervalMs: this.config.maxPollIntervalMs,
      },
      { identifiers, csr: request.csr, replaces, signal: request.signal },
    );
    this.#log.info({ names }, 'certificate issued');
    return { chainPem: result.chainPem, issuerData: { orderUrl: result.orderUrl, accountUrl: account.url, directoryUrl: this.config.directoryUrl } };
  }

  /** Revokes a certificate this account obtained (RFC 8555 7.6), with an RFC 5280 reason code. */
  revoke(certificatePem: string, reason: RevocationReason = 0, signal?: AbortSignal): Promise<void> {
    return this.#track(signal, (combined) => this.#revoke(certificatePem, reason, combined));
  }

  async #revoke(certificatePem: string, reason: RevocationReason, signal: AbortSignal | undefined): Promise<void> {
    throwIfAborted(signal);
    if (!REVOCATION_REASONS.includes(reason)) throw new InvalidOptionError('reason', `must be one of ${REVOCATION_REASONS.join(', ')}`);
    const leaf = PEM_CERT.exec(certificatePem)?.[0];
    if (!leaf) throw new InvalidOptionError('certificatePem', 'must hold a PEM certificate');
    const { conn, directory } = await this.#session(signal);
    if (!directory.revokeCert) throw new InvalidOptionError('revoke', 'the CA directory has no revokeCert resource');
    const certificate = acme.crypto.getPemBodyAsB64u(leaf);
    await conn.post(directory.revokeCert, { certificate, reason }, { ok: [200], what: 'revokeCert', signal });
    this.#log.info({ reason }, 'certificate revoked');
  }

  /** ARI (RFC 9773); undefined when the CA does not offer renewalInfo. */
  async renewalInfo(certificatePem: string, signal?: AbortSignal): Promise<RenewalInfo | undefined> {
    if (this.#closed) throw new ClosedError('AcmeIssuer');
    // ARI needs no account: read the directory with a throwaway key when no account is loaded.
    this.#directoryProbe ??= this.#connection ?? this.#connect(await createAccountKeyPem());
    const directory = await this.#directoryProbe.directory(signal);
    if (!directory.renewalInfo) return undefined;
    // A plain GET outside the signed-request path: the CA's Retry-After holds it too, and a 503 here holds the others.
    const gate = caGate(this.config.directoryUrl, this.config.clock);
    if (gate.blockedUntil() !== undefined) throw gate.error();
    try {
      return await fetchRenewalInfo(directory.renewalInfo, certificatePem, {
        signal,
        clock: this.config.clock,
        // Through acme-client's axios instance, so the issuer's CA trust applies.
        fetchImpl: axiosFetch,
      });
    } catch (error) {
      gate.observe(error);
      throw error;
    }
  }

  /** Runs an operation that close() can stop and waits for, with the caller's signal joined to the issuer's. */
  #track<T>(callerSignal: AbortSignal | undefined, operation: (signal: AbortSignal) => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(new ClosedError('AcmeIssuer'));
    const signal = callerSignal ? AbortSignal.any([callerSignal, this.#closing.signal]) : this.#closing.signal;
    const promise = keepingProcessAlive(() => operation(signal));
    this.#inFlight.add(promise);
    const forget = (): void => {
      this.#inFlight.delete(promise);
    };
    promise.then(forget, forget);
    return promise;
  }

  /**
   * Stops operations in flight (they reject with ClosedError once their
   * challenge clean-up has run), then releases this issuer's TLS agents.
   * Idempotent; storage is the caller's to close.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#closing.abort(new ClosedError('AcmeIssuer'));
    await Promise.allSettled([...this.#inFlight]);
    this.#trust.release();
  }
}

/**
 * The engine's waits use the Clock, whose timers are unref'd; an order in
 * progress must still keep a one-shot process (CLI, script) alive, as a
 * pending socket would.
 */
async function keepingProcessAlive<T>(operation: () => Promise<T>): Promise<T> {
  const handle = setInterval(() => undefined, 2 ** 30);
  try {
    return await operation();
  } finally {
    clearInterval(handle);
  }
}

/** A minimal fetch over acme-client's axios instance (plain GET), for ARI. */
const axiosFetch: typeof fetch = async (input, init) => {
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
