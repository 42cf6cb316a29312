/**
 * AcmeIssuer: an Issuer over an ACME CA (Let's Encrypt, ZeroSSL, Google,
 * step-ca, Pebble...). Accounts live in storage; solvers answer challenges.
 * The protocol is in acme/; this class keeps one account session per issuer
 * and runs orders, revocations and ARI lookups that close() stops and waits for.
 */
import { setMaxListeners } from 'node:events';
import { untilAborted } from '../abort.js';
import { InvalidNameError, InvalidOptionError, throwIfAborted } from '../errors.js';
import { Closable } from '../lifecycle.js';
import type { Logger } from '../logger.js';
import { parseIdentifier, type Identifier } from '../names.js';
import { issuerKeyFromDirectoryUrl } from '../storage/layout.js';
import { createAccountKeyPem, ensureAccount, type StoredAccount } from '../acme/account.js';
import { certId, fetchRenewalInfo } from '../acme/ari.js';
import { caGate, SharedDirectory } from '../acme/ca-gate.js';
import { ariLimiter } from '../acme/ari-limit.js';
import { AcmeConnection } from '../acme/connection.js';
import type { AcmeDirectory } from '../acme/directories.js';
import { assertIpSolvable, profileForIdentifiers } from '../acme/ip-identifiers.js';
import { runOrder } from '../acme/order.js';
import { isProblem } from '../acme/problem.js';
import { profileCandidates } from '../acme/profiles.js';
import { revocationRequest, revoke } from '../acme/revocation.js';
import { acmeFetch } from '../acme/http.js';
import { TrustHandle } from '../acme/trust.js';
import { resolveAcmeIssuerOptions, type AcmeIssuerOptions, type ResolvedAcmeIssuerConfig } from './acme-options.js';
import type { IssueRequest, IssuedCertificate, Issuer, RenewalInfo, RevocationReason } from './types.js';

export { resolveAcmeIssuerOptions, type AcmeIssuerOptions, type ResolvedAcmeIssuerConfig } from './acme-options.js';
export { REVOCATION_REASONS } from '../acme/revocation.js';

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

export class AcmeIssuer extends Closable implements Issuer {
  readonly key: string;
  readonly config: ResolvedAcmeIssuerConfig;
  readonly #log: Logger;
  readonly #trust: TrustHandle;
  #account: Promise<StoredAccount> | undefined;
  #connection: AcmeConnection | undefined;
  #directoryProbe: AcmeConnection | undefined;
  /** Every connection of this issuer reads the directory once, together. */
  #directories: SharedDirectory | undefined;

  constructor(options: AcmeIssuerOptions) {
    super('AcmeIssuer');
    // Every operation in flight listens on this long-lived signal; more than 10 at once is normal, not a leak.
    setMaxListeners(0, this.closeSignal);
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
    this.assertOpen();
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
        this.closeSignal,
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
    return this.#run(request.signal, (signal) => this.#issue({ ...request, signal }));
  }

  async #issue(request: IssueRequest): Promise<IssuedCertificate> {
    throwIfAborted(request.signal);
    const identifiers = checkIdentifiers(request.identifiers);
    // Before any request: an IP address with only DNS-01 configured can never be validated.
    assertIpSolvable(identifiers, this.config.challengePreference.filter((type) => this.config.solvers[type] !== undefined));
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
    await request.beforeOrder?.();
    let replaces: string | undefined;
    if (request.replacesCertificatePem !== undefined && directory.renewalInfo !== undefined) {
      try {
        replaces = certId(request.replacesCertificatePem);
      } catch (error) {
        this.#log.warn({ err: error }, 'cannot compute the ARI certificate ID of the replaced certificate; ordering without replaces');
      }
    }
    const names = identifiers.map((i) => i.value);
    // Chosen from the directory before any order: a profile the CA does not offer orders nothing.
    const profiles = profileCandidates(
      { preference: request.profile ?? this.config.profile, kept: request.keptProfile ?? profileForIdentifiers(identifiers, directory) },
      directory,
      this.config.directoryUrl,
      this.#log,
    );
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
      { identifiers, csr: request.csr, replaces, profiles, signal: request.signal },
    );
    this.#log.info({ names, ...(result.profile !== undefined ? { profile: result.profile } : {}) }, 'certificate issued');
    return {
      chainPem: result.chainPem,
      certificates: result.certificates,
      issuerData: { orderUrl: result.orderUrl, accountUrl: account.url, directoryUrl: this.config.directoryUrl },
      profile: result.profile,
      profileRequested: result.profileRequested,
    };
  }

  /** Revokes a certificate this account obtained (RFC 8555 7.6), with an RFC 5280 reason code. */
  revoke(certificatePem: string, reason: RevocationReason = 0, signal?: AbortSignal): Promise<void> {
    return this.#run(signal, async (combined) => {
      throwIfAborted(combined);
      const request = revocationRequest(certificatePem, reason);
      const { conn, directory } = await this.#session(combined);
      await revoke(conn, directory, request, combined);
      this.#log.info({ reason }, 'certificate revoked');
    });
  }

  /** ARI (RFC 9773); undefined when the CA does not offer renewalInfo. */
  renewalInfo(certificatePem: string, signal?: AbortSignal): Promise<RenewalInfo | undefined> {
    return this.#run(signal, (combined) => this.#renewalInfo(certificatePem, combined));
  }

  async #renewalInfo(certificatePem: string, signal: AbortSignal): Promise<RenewalInfo | undefined> {
    // ARI needs no account: read the directory with a throwaway key when no account is loaded.
    this.#directoryProbe ??= this.#connection ?? this.#connect(await createAccountKeyPem());
    const directory = await this.#directoryProbe.directory(signal);
    if (!directory.renewalInfo) return undefined;
    // A plain GET outside the signed-request path: the CA's Retry-After holds it too, and a 503 here holds the others.
    const gate = caGate(this.config.directoryUrl, this.config.clock);
    if (gate.blockedUntil() !== undefined) throw gate.error();
    const url = directory.renewalInfo;
    // Bounded per CA, whatever the number of certificates and issuers in this process (src/acme/ari-limit.ts).
    return ariLimiter(this.config.directoryUrl, this.config.clock).run(certId(certificatePem), async () => {
      try {
        // Over the ACME agents, so the issuer's CA trust applies.
        return await fetchRenewalInfo(url, certificatePem, { signal, clock: this.config.clock, fetchImpl: acmeFetch });
      } catch (error) {
        gate.observe(error);
        throw error;
      }
    }, signal);
  }

  /** Runs an operation that close() stops (through its signal) and waits for, with the caller's signal joined to the issuer's. */
  #run<T>(callerSignal: AbortSignal | undefined, operation: (signal: AbortSignal) => Promise<T>): Promise<T> {
    try {
      this.assertOpen();
    } catch (error) {
      return Promise.reject(error);
    }
    const signal = callerSignal ? AbortSignal.any([callerSignal, this.closeSignal]) : this.closeSignal;
    return this.track(keepingProcessAlive(() => operation(signal)));
  }

  /**
   * Runs after close() stopped the operations in flight (they reject with
   * ClosedError once their challenge clean-up has run): releases this
   * issuer's TLS agents. Storage is the caller's to close.
   */
  protected async onClose(): Promise<void> {
    await this.#trust.close();
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
