/**
 * An issuer that needs no network, like Caddy's `tls internal`: a local root CA
 * and a short-lived intermediate, both created on first use and kept in
 * storage, sign short-lived leaf certificates for any name or IP (localhost
 * included), so renewal is exercised all the time.
 *
 * This file keeps the CA current (lock-free read, then repair under the CA
 * lock) and signs leaves; internal-ca.ts makes and reads the CA certificates.
 *
 * Why @peculiar/x509: node:crypto can parse and verify X.509 certificates but
 * cannot build or sign one (there is no certificate or CSR builder in Node).
 * @peculiar/x509 is already in the tree through acme-client, signs with
 * WebCrypto keys (so ECDSA P-256 CA keys work) and verifies PKCS#10 CSRs of
 * any key type. node-forge was the other candidate, but it can only parse and
 * sign with RSA keys, not ECDSA.
 */
import { InvalidNameError, throwIfAborted } from '../errors.js';
import { Closable } from '../lifecycle.js';
import { parseIdentifier, type Identifier } from '../names.js';
import { internalCaKeys, internalCaLockName, type InternalCaKeys } from '../storage/layout.js';
import { put, writeUnderLock } from '../storage/fenced.js';
import { loadIfExists } from '../storage/load-if-exists.js';
import type { Storage } from '../storage/types.js';
import type { IssuedCertificate, Issuer, IssueRequest } from './types.js';
import { signLeaf, type LeafSigningRequest } from './leaf-signing.js';
import {
  CLOCK_SKEW_BACKDATE_MS,
  createIntermediateCa,
  createRootCa,
  issuedBy,
  parseBundle,
  pemBlock,
  randomSerial,
  type CaPair,
} from './internal-ca.js';
import { resolveInternalIssuerOptions, type InternalIssuerOptions, type ResolvedInternalIssuerConfig } from './internal-options.js';
import { DEFAULT_INTERMEDIATE_LIFETIME_MS, DEFAULT_INTERNAL_CA_NAME, DEFAULT_LEAF_LIFETIME_MS, DEFAULT_ROOT_LIFETIME_MS } from '../defaults.js';
export { DEFAULT_INTERNAL_CA_NAME, DEFAULT_LEAF_LIFETIME_MS, DEFAULT_INTERMEDIATE_LIFETIME_MS, DEFAULT_ROOT_LIFETIME_MS };
export { CLOCK_SKEW_BACKDATE_MS } from './clock-skew.js';
export { resolveInternalIssuerOptions, type InternalIssuerOptions, type ResolvedInternalIssuerConfig } from './internal-options.js';

/** A CA certificate is replaced once less than this fraction of its lifetime remains. */
export const CA_RENEWAL_REMAINING_RATIO = 1 / 3;

interface CaState {
  root: CaPair;
  intermediate: CaPair;
}

interface StoredCa {
  root: CaPair | undefined;
  intermediate: CaPair | undefined;
  /** The `.crt` copies match their bundles. */
  copiesCurrent: boolean;
}

export class InternalIssuer extends Closable implements Issuer {
  readonly key: string;
  readonly config: ResolvedInternalIssuerConfig;
  readonly #keys: InternalCaKeys;
  readonly #lockName: string;
  #ca: CaState | undefined;
  #loading: Promise<CaState> | undefined;

  constructor(options: InternalIssuerOptions) {
    super('InternalIssuer');
    this.config = resolveInternalIssuerOptions(options);
    this.key = `internal-${this.config.name}`;
    this.#keys = internalCaKeys(this.config.name);
    this.#lockName = internalCaLockName(this.config.name);
  }

  /** The storage key of the root certificate (with file storage, a path below its root), for `certkeeper trust`. */
  rootCertificateKey(): string {
    return this.#keys.rootCert;
  }

  /** The root certificate clients must trust; creates the CA on first use. */
  rootCertificatePem(signal?: AbortSignal): Promise<string> {
    return this.#run(async () => (await this.#currentCa(signal)).root.certPem);
  }

  issue(request: IssueRequest): Promise<IssuedCertificate> {
    return this.#run(() => this.#issue(request));
  }

  async #issue(request: IssueRequest): Promise<IssuedCertificate> {
    throwIfAborted(request.signal);
    const identifiers = checkIdentifiers(request.identifiers);
    const ca = await this.#currentCa(request.signal);
    throwIfAborted(request.signal);

    const now = this.config.clock.now();
    const signing: LeafSigningRequest = {
      csr: request.csr,
      identifiers,
      serialNumber: randomSerial(),
      notBefore: now - CLOCK_SKEW_BACKDATE_MS,
      // A leaf never outlives its issuer: clients would reject the chain before the leaf expires.
      notAfter: Math.min(now + this.config.leafLifetimeMs, ca.intermediate.cert.notAfter.getTime()),
      issuerCertificate: new Uint8Array(ca.intermediate.cert.rawData),
      signingKey: ca.intermediate.key,
    };
    // Parsing and building ASN.1 in JavaScript costs milliseconds per leaf: on a worker when the keeper gave one.
    const leafDer = this.config.offload ? await this.config.offload.signLeaf(signing) : await signLeaf(signing);
    this.config.logger.debug(
      { names: identifiers.map((id) => id.value), serial: signing.serialNumber, notAfter: new Date(signing.notAfter).toISOString() },
      'leaf certificate signed',
    );
    return {
      chainPem: `${pemBlock('CERTIFICATE', Buffer.from(leafDer))}${ca.intermediate.certPem}`,
      issuerData: { internalCa: this.config.name, intermediateSerial: ca.intermediate.cert.serialNumber },
    };
  }

  /** Work close() waits for: signing, and loading or repairing the CA (which holds the CA lock). */
  #run<T>(operation: () => Promise<T>): Promise<T> {
    try {
      this.assertOpen();
    } catch (error) {
      return Promise.reject(error);
    }
    return this.track(operation());
  }

  protected onClose(): void {
    // Nothing is held between operations: the CA lock is released by the load that took it.
  }

  /** The CA to sign with: the cached one while fresh, else loaded from storage, renewed or created. */
  async #currentCa(signal: AbortSignal | undefined): Promise<CaState> {
    const cached = this.#ca;
    if (cached && this.#isFresh(cached, this.config.clock.now())) return cached;
    // One load at a time per instance; concurrent callers share it (and the signal of the caller that started it).
    this.#loading ??= this.#loadOrCreate(signal).finally(() => {
      this.#loading = undefined;
    });
    return this.#loading;
  }

  async #loadOrCreate(signal: AbortSignal | undefined): Promise<CaState> {
    // Lock-free read first: when the CA exists and is fresh, no lock is needed.
    const stored = await this.#readStored();
    if (stored.root && stored.intermediate && stored.copiesCurrent) {
      const state = { root: stored.root, intermediate: stored.intermediate };
      const now = this.config.clock.now();
      if (this.#rootUsable(state.root, now) && this.#intermediateUsable(state.intermediate, state.root, now)) {
        this.#ca = state;
        return state;
      }
    }

    const { storage } = this.config;
    await storage.lock(this.#lockName, { signal });
    try {
      // Read again under the lock: another process may have created or renewed the CA meanwhile.
      const state = await this.#repairLocked(await this.#readStored());
      this.#ca = state;
      return state;
    } finally {
      await storage.unlock(this.#lockName);
    }
  }

  /** Creates or renews whatever is missing or stale. Runs under the CA lock. */
  async #repairLocked(stored: StoredCa): Promise<CaState> {
    const { logger, clock } = this.config;
    let { root, intermediate } = stored;
    let copiesCurrent = stored.copiesCurrent;
    const now = clock.now();

    if (!root || !this.#rootUsable(root, now)) {
      if (root) {
        logger.warn({ notAfter: root.cert.notAfter.toISOString() }, 'root CA is about to expire; creating a new one, which clients must trust again');
      }
      root = await createRootCa(this.config.name, this.config.rootLifetimeMs, now);
      await this.#write(this.#keys.rootKey, root.bundle);
      intermediate = undefined;
      copiesCurrent = false;
      logger.info({ serial: root.cert.serialNumber, notAfter: root.cert.notAfter.toISOString() }, 'root CA created');
    }
    if (!intermediate || !this.#intermediateUsable(intermediate, root, now)) {
      intermediate = await createIntermediateCa(this.config.name, root, this.config.intermediateLifetimeMs, now);
      // Written after the root: a crash in between leaves an intermediate not issued by the
      // new root, which the next load detects and replaces.
      await this.#write(this.#keys.intermediateKey, intermediate.bundle);
      copiesCurrent = false;
      logger.info(
        { serial: intermediate.cert.serialNumber, notAfter: intermediate.cert.notAfter.toISOString() },
        'intermediate CA created',
      );
    }
    if (!copiesCurrent) {
      await this.#write(this.#keys.rootCert, root.certPem);
      await this.#write(this.#keys.intermediateCert, intermediate.certPem);
    }
    return { root, intermediate };
  }

  async #write(key: string, value: string): Promise<void> {
    // A process whose lease lapsed must not overwrite what the new holder wrote.
    await writeUnderLock(this.config.storage, this.#lockName, [put(key, value)]);
  }

  async #readStored(): Promise<StoredCa> {
    const rootBundle = await this.#loadOptional(this.#keys.rootKey);
    if (rootBundle === undefined) return { root: undefined, intermediate: undefined, copiesCurrent: false };
    // A broken root is not replaced silently: every client trusting it would stop working.
    const root = await parseBundle(rootBundle, this.#keys.rootKey);

    let intermediate: CaPair | undefined;
    const intermediateBundle = await this.#loadOptional(this.#keys.intermediateKey);
    if (intermediateBundle !== undefined) {
      try {
        intermediate = await parseBundle(intermediateBundle, this.#keys.intermediateKey);
      } catch (error) {
        // The intermediate is short-lived and replaceable; a new one is made under the lock.
        this.config.logger.warn({ key: this.#keys.intermediateKey, err: (error as Error).message }, 'stored intermediate CA unusable; replacing it');
      }
    }
    const rootCopy = await this.#loadOptional(this.#keys.rootCert);
    const intermediateCopy = await this.#loadOptional(this.#keys.intermediateCert);
    const copiesCurrent = rootCopy === root.certPem && intermediate !== undefined && intermediateCopy === intermediate.certPem;
    return { root, intermediate, copiesCurrent };
  }

  async #loadOptional(key: string): Promise<string | undefined> {
    return (await loadIfExists(this.config.storage, key))?.toString('utf8');
  }

  /** Time checks only: the pairing of root and intermediate was checked when the state was loaded. */
  #isFresh(state: CaState, now: number): boolean {
    return this.#rootUsable(state.root, now) && this.#intermediateTimely(state.intermediate, now);
  }

  /** The root must outlast a whole new intermediate. */
  #rootUsable(root: CaPair, now: number): boolean {
    return now + this.config.intermediateLifetimeMs <= root.cert.notAfter.getTime();
  }

  #intermediateUsable(intermediate: CaPair, root: CaPair, now: number): boolean {
    return this.#intermediateTimely(intermediate, now) && issuedBy(intermediate, root);
  }

  /** Valid now, with at least a third of its lifetime left. */
  #intermediateTimely(intermediate: CaPair, now: number): boolean {
    const notBefore = intermediate.cert.notBefore.getTime();
    const notAfter = intermediate.cert.notAfter.getTime();
    if (now < notBefore) return false; // the clock went back: clients would reject it
    return notAfter - now >= (notAfter - notBefore) * CA_RENEWAL_REMAINING_RATIO;
  }
}

function checkIdentifiers(identifiers: unknown): Identifier[] {
  if (!Array.isArray(identifiers) || identifiers.length === 0) {
    throw new InvalidNameError('', 'at least one identifier is required');
  }
  const seen = new Set<string>();
  const out: Identifier[] = [];
  for (const id of identifiers as unknown[]) {
    // Re-parsed rather than trusted: these become the certificate's SANs.
    const raw = typeof id === 'object' && id !== null ? (id as { value?: unknown }).value : id;
    const parsed = parseIdentifier(raw);
    if (!seen.has(parsed.value)) {
      seen.add(parsed.value);
      out.push(parsed);
    }
  }
  return out;
}
