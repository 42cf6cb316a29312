/**
 * An issuer that needs no network, like Caddy's `tls internal`: a local root CA
 * and a short-lived intermediate, both created on first use and kept in
 * storage, sign short-lived leaf certificates for any name or IP (localhost
 * included), so renewal is exercised all the time.
 *
 * Why @peculiar/x509: node:crypto can parse and verify X.509 certificates but
 * cannot build or sign one (there is no certificate or CSR builder in Node).
 * @peculiar/x509 is already in the tree through acme-client, signs with
 * WebCrypto keys (so ECDSA P-256 CA keys work) and verifies PKCS#10 CSRs of
 * any key type. node-forge was the other candidate, but it can only parse and
 * sign with RSA keys, not ECDSA.
 */
import { createPrivateKey, createPublicKey, randomBytes, webcrypto, X509Certificate as NodeX509Certificate } from 'node:crypto';
import type * as X509 from '@peculiar/x509';
import { lazyModule } from '../lazy.js';

const x509 = lazyModule<typeof X509>('@peculiar/x509');
import { systemClock, type Clock } from '../clock.js';
import {
  CertificateInvalidError,
  ClosedError,
  InvalidNameError,
  InvalidOptionError,
  throwIfAborted,
} from '../errors.js';
import { createDefaultLogger, validateLogger, type Logger } from '../logger.js';
import { parseIdentifier, type Identifier } from '../names.js';
import { internalCaKeys, internalCaLockName, safeKeyComponent, type InternalCaKeys } from '../storage/layout.js';
import { put, writeUnderLock } from '../storage/fenced.js';
import { loadIfExists } from '../storage/load-if-exists.js';
import type { Storage } from '../storage/types.js';
import type { IssuedCertificate, Issuer, IssueRequest } from './types.js';
import type { CpuOffload } from '../cpu/offload.js';
import { cryptoProvider, SIGNING_ALGORITHM, signLeaf, type LeafSigningRequest } from './leaf-signing.js';
import { DEFAULT_INTERMEDIATE_LIFETIME_MS, DEFAULT_INTERNAL_CA_NAME, DEFAULT_LEAF_LIFETIME_MS, DEFAULT_ROOT_LIFETIME_MS } from '../defaults.js';
export { DEFAULT_INTERNAL_CA_NAME, DEFAULT_LEAF_LIFETIME_MS, DEFAULT_INTERMEDIATE_LIFETIME_MS, DEFAULT_ROOT_LIFETIME_MS };


/** notBefore is set this far in the past, so a client whose clock lags a little still accepts a fresh certificate. */
export const CLOCK_SKEW_BACKDATE_MS = 60_000;
/** A CA certificate is replaced once less than this fraction of its lifetime remains. */
export const CA_RENEWAL_REMAINING_RATIO = 1 / 3;

export interface InternalIssuerOptions {
  /** Where the CA certificates and keys live (required). */
  storage: Storage;
  /** Name of this CA; separate names are separate CAs. Default `local`. */
  name?: string | undefined;
  /** Leaf certificate lifetime. Default 24 h. */
  leafLifetimeMs?: number | undefined;
  /** Intermediate lifetime; it is replaced when a third of it remains. Default 7 days. */
  intermediateLifetimeMs?: number | undefined;
  /** Root lifetime. Default 10 years. */
  rootLifetimeMs?: number | undefined;
  clock?: Clock | undefined;
  logger?: Logger | undefined;
  /** Signs leaves on this worker thread instead of the caller's (a CertKeeper passes its own; close it yourself otherwise). */
  offload?: CpuOffload | undefined;
}

export interface ResolvedInternalIssuerConfig {
  readonly storage: Storage;
  readonly name: string;
  readonly leafLifetimeMs: number;
  readonly intermediateLifetimeMs: number;
  readonly rootLifetimeMs: number;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly offload: CpuOffload | undefined;
}

export function resolveInternalIssuerOptions(options: InternalIssuerOptions): ResolvedInternalIssuerConfig {
  if (typeof options !== 'object' || options === null) {
    throw new InvalidOptionError('options', 'must be an object');
  }
  const storage = options.storage as unknown;
  if (typeof storage !== 'object' || storage === null) {
    throw new InvalidOptionError('storage', 'is required (a Storage implementation)');
  }
  for (const method of ['load', 'store', 'lock', 'unlock'] as const) {
    if (typeof (storage as Record<string, unknown>)[method] !== 'function') {
      throw new InvalidOptionError('storage', `must have a ${method}() method`);
    }
  }

  const name = options.name ?? DEFAULT_INTERNAL_CA_NAME;
  if (typeof name !== 'string' || name.length === 0 || name.length > 64 || !/^[a-z0-9][a-z0-9_.-]*$/.test(name)) {
    throw new InvalidOptionError('name', 'must be 1-64 characters of a-z, 0-9, "_", "." or "-", starting with a letter or digit');
  }
  // The name becomes a storage key component; it must survive sanitising unchanged.
  if (safeKeyComponent(name) !== name) throw new InvalidOptionError('name', 'is not usable as a storage key component');

  const leafLifetimeMs = lifetime(options.leafLifetimeMs, DEFAULT_LEAF_LIFETIME_MS, 'leafLifetimeMs');
  const intermediateLifetimeMs = lifetime(options.intermediateLifetimeMs, DEFAULT_INTERMEDIATE_LIFETIME_MS, 'intermediateLifetimeMs');
  const rootLifetimeMs = lifetime(options.rootLifetimeMs, DEFAULT_ROOT_LIFETIME_MS, 'rootLifetimeMs');
  if (leafLifetimeMs > intermediateLifetimeMs) {
    throw new InvalidOptionError('leafLifetimeMs', `must not exceed intermediateLifetimeMs (${intermediateLifetimeMs})`);
  }
  if (intermediateLifetimeMs > rootLifetimeMs) {
    throw new InvalidOptionError('intermediateLifetimeMs', `must not exceed rootLifetimeMs (${rootLifetimeMs})`);
  }

  const clock = options.clock ?? systemClock;
  if (typeof clock !== 'object' || clock === null || typeof clock.now !== 'function') {
    throw new InvalidOptionError('clock', 'must be a Clock with a now() method');
  }
  const logger = options.logger === undefined ? createDefaultLogger('silent') : validateLogger(options.logger);
  const offload = options.offload;
  if (offload !== undefined && (typeof offload !== 'object' || offload === null || typeof offload.signLeaf !== 'function')) {
    throw new InvalidOptionError('offload', 'must be a CpuOffload');
  }

  return Object.freeze({
    storage: options.storage,
    name,
    leafLifetimeMs,
    intermediateLifetimeMs,
    rootLifetimeMs,
    clock,
    logger: logger.child({ component: 'internal-issuer', ca: name }),
    offload,
  });
}

function lifetime(value: unknown, fallback: number, option: string): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 2 * CLOCK_SKEW_BACKDATE_MS) {
    throw new InvalidOptionError(option, `must be an integer number of milliseconds, at least ${2 * CLOCK_SKEW_BACKDATE_MS}`);
  }
  return value;
}

/** A CA certificate with its signing key. */
interface CaPair {
  certPem: string;
  cert: X509.X509Certificate;
  key: webcrypto.CryptoKey;
  /** Storage value holding key and certificate together. */
  bundle: string;
}

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

const EC_ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256' } as const;

export class InternalIssuer implements Issuer {
  readonly key: string;
  readonly config: ResolvedInternalIssuerConfig;
  readonly #keys: InternalCaKeys;
  readonly #lockName: string;
  #ca: CaState | undefined;
  #loading: Promise<CaState> | undefined;
  #closed = false;

  constructor(options: InternalIssuerOptions) {
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
  async rootCertificatePem(signal?: AbortSignal): Promise<string> {
    return (await this.#currentCa(signal)).root.certPem;
  }

  async issue(request: IssueRequest): Promise<IssuedCertificate> {
    if (this.#closed) throw new ClosedError('InternalIssuer');
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

  async close(): Promise<void> {
    this.#closed = true;
    await this.#loading?.catch(() => undefined);
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
      root = await this.#createRoot(now);
      await this.#write(this.#keys.rootKey, root.bundle);
      intermediate = undefined;
      copiesCurrent = false;
      logger.info({ serial: root.cert.serialNumber, notAfter: root.cert.notAfter.toISOString() }, 'root CA created');
    }
    if (!intermediate || !this.#intermediateUsable(intermediate, root, now)) {
      intermediate = await this.#createIntermediate(root, now);
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

  async #createRoot(now: number): Promise<CaPair> {
    const keys = await generateCaKeys();
    const year = new Date(now).getUTCFullYear();
    const cert = await x509.X509CertificateGenerator.createSelfSigned(
      {
        serialNumber: randomSerial(),
        name: [{ CN: [`certkeeper ${this.config.name} root CA ${year}`] }, { O: ['certkeeper'] }],
        notBefore: new Date(now - CLOCK_SKEW_BACKDATE_MS),
        notAfter: new Date(now + this.config.rootLifetimeMs),
        keys,
        signingAlgorithm: SIGNING_ALGORITHM,
        extensions: [
          new x509.BasicConstraintsExtension(true, undefined, true),
          new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
          await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, cryptoProvider),
        ],
      },
      cryptoProvider,
    );
    return makePair(cert, keys.privateKey);
  }

  async #createIntermediate(root: CaPair, now: number): Promise<CaPair> {
    const keys = await generateCaKeys();
    const notAfter = Math.min(now + this.config.intermediateLifetimeMs, root.cert.notAfter.getTime());
    const cert = await x509.X509CertificateGenerator.create(
      {
        serialNumber: randomSerial(),
        subject: [{ CN: [`certkeeper ${this.config.name} intermediate CA`] }, { O: ['certkeeper'] }],
        issuer: root.cert.subjectName,
        notBefore: new Date(now - CLOCK_SKEW_BACKDATE_MS),
        notAfter: new Date(notAfter),
        publicKey: keys.publicKey,
        signingKey: root.key,
        signingAlgorithm: SIGNING_ALGORITHM,
        extensions: [
          // pathLen 0: the intermediate signs leaves only.
          new x509.BasicConstraintsExtension(true, 0, true),
          new x509.KeyUsagesExtension(
            x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature,
            true,
          ),
          await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, cryptoProvider),
          await x509.AuthorityKeyIdentifierExtension.create(root.cert.publicKey, false, cryptoProvider),
        ],
      },
      cryptoProvider,
    );
    return makePair(cert, keys.privateKey);
  }
}

/** A crash between writing a new root and its intermediate leaves an intermediate of the old root: detected here. */
function issuedBy(intermediate: CaPair, root: CaPair): boolean {
  const child = new NodeX509Certificate(intermediate.certPem);
  const parent = new NodeX509Certificate(root.certPem);
  return child.checkIssued(parent) && child.verify(parent.publicKey);
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

async function generateCaKeys(): Promise<webcrypto.CryptoKeyPair> {
  // Extractable, since the private key is stored.
  return (await webcrypto.subtle.generateKey(EC_ALGORITHM, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
}

async function makePair(cert: X509.X509Certificate, privateKey: webcrypto.CryptoKey): Promise<CaPair> {
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', privateKey));
  const keyPem = pemBlock('PRIVATE KEY', pkcs8);
  const certPem = toPem(cert);
  return { cert, certPem, key: privateKey, bundle: `${keyPem}${certPem}` };
}

const PEM_BLOCK = /-----BEGIN ([A-Z ]+)-----\r?\n([A-Za-z0-9+/=\r\n]+?)-----END \1-----/g;

/** Reads a `.key` bundle (PKCS#8 key + certificate) and checks that the two belong together. */
async function parseBundle(text: string, storageKey: string): Promise<CaPair> {
  const blocks = new Map<string, Buffer>();
  for (const match of text.matchAll(PEM_BLOCK)) {
    blocks.set(match[1]!, Buffer.from(match[2]!.replace(/\s+/g, ''), 'base64'));
  }
  const keyDer = blocks.get('PRIVATE KEY');
  const certDer = blocks.get('CERTIFICATE');
  if (!keyDer || !certDer) {
    throw new CertificateInvalidError(`${storageKey} must hold a PKCS#8 private key and a certificate`);
  }
  let cert: X509.X509Certificate;
  let key: webcrypto.CryptoKey;
  try {
    cert = new x509.X509Certificate(certDer);
    key = await webcrypto.subtle.importKey('pkcs8', keyDer, EC_ALGORITHM, false, ['sign']);
  } catch (error) {
    throw new CertificateInvalidError(`${storageKey} does not hold a readable ECDSA P-256 key and certificate`, { cause: error });
  }
  const keySpki = createPublicKey(createPrivateKey({ key: keyDer, format: 'der', type: 'pkcs8' })).export({ type: 'spki', format: 'der' });
  if (!keySpki.equals(Buffer.from(cert.publicKey.rawData))) {
    throw new CertificateInvalidError(`${storageKey}: the private key does not match the certificate`);
  }
  const certPem = toPem(cert);
  return { cert, certPem, key, bundle: text };
}

/** 128 random bits with a non-zero first byte, so every serial is 16 bytes long; @peculiar/x509 keeps the DER INTEGER positive. */
function randomSerial(): string {
  for (;;) {
    const bytes = randomBytes(16);
    if (bytes[0] !== 0) return bytes.toString('hex');
  }
}

function toPem(cert: X509.X509Certificate): string {
  return pemBlock('CERTIFICATE', Buffer.from(cert.rawData));
}

function pemBlock(label: string, der: Buffer): string {
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}
