/**
 * Stored certificate sets of managed names: reading them (the sidecar alone,
 * or the whole verified set), deciding whether one is usable, and adopting
 * one: serving a stored set as the record's certificate. A set just obtained
 * is served the same way (serve()).
 */
import type { Clock } from '../clock.js';
import type { TypedEmitter } from '../events.js';
import type { Logger } from '../logger.js';
import { setAri, type ManagedRecord } from '../renewal/managed-record.js';
import { listCertificateNames, readStoredCertificate, type CertificateMeta, type CertificateSet } from '../storage/certificates.js';
import { certificatesPrefix, safeKeyComponent } from '../storage/layout.js';
import { hasFolderListing, type Storage } from '../storage/types.js';
import { buildMaterial, type CertificateMaterial } from '../tls/certificate-material.js';
import type { ContextCache } from '../tls/context-cache.js';

export interface StoredSetsOptions {
  storage: Storage;
  cache: ContextCache;
  events: TypedEmitter;
  clock: Clock;
  logger: Logger;
  defaultServerName: string | undefined;
  /** A certificate is now served for the record (its ARI window is worth asking for). */
  onServed(record: ManagedRecord): void;
}

/** What one listing found: each issuer's stored certificate folders, in the records' issuer order. */
export type ListedSets = readonly { readonly issuerKey: string; readonly folders: ReadonlySet<string> }[];

export class StoredSets {
  readonly #options: StoredSetsOptions;

  constructor(options: StoredSetsOptions) {
    this.#options = options;
  }

  /**
   * Reads the stored certificate of a record (first issuer that has one).
   * Eager: the full set is verified and adopted. Otherwise only the sidecar is
   * read, and the set is adopted on its first handshake.
   * Returns false when nothing usable is stored (missing, corrupt, expired).
   */
  async load(record: ManagedRecord, { eager }: { eager: boolean }): Promise<boolean> {
    for (const issuer of record.settings.issuers) {
      if (eager) {
        const set = await this.readSet(issuer.key, record.certName);
        if (set && this.usable(set.meta, record)) {
          this.adopt(record, set);
          return true;
        }
        if (set) applySidecarBackoff(record, set.meta);
      } else {
        const meta = await this.readMeta(issuer.key, record.certName);
        if (meta && this.usable(meta, record)) {
          applySidecar(record, meta);
          return true;
        }
      }
    }
    return false;
  }

  /** Stored certificate folders of the records' issuers, in issuer order (earlier issuers win). */
  async list(records: readonly ManagedRecord[]): Promise<ListedSets> {
    const issuerKeys = [...new Set(records.flatMap((r) => r.settings.issuers.map((i) => i.key)))];
    const listed: { issuerKey: string; folders: ReadonlySet<string> }[] = [];
    for (const issuerKey of issuerKeys) listed.push({ issuerKey, folders: new Set(await this.#folders(issuerKey)) });
    return listed;
  }

  /** Marks a listed record as stored: it is served, its set read on its first handshake. False when not listed. */
  markListed(record: ManagedRecord, listed: ListedSets): boolean {
    // A hit on the name itself is its folder: folder names are safeKeyComponent's output, which maps such a
    // name to itself. Only a name that is not listed as it is pays for the escaped copy.
    const { certName } = record;
    let safe: string | undefined;
    for (const { issuerKey, folders } of listed) {
      if (!folders.has(certName)) {
        safe ??= safeKeyComponent(certName);
        if (safe === certName || !folders.has(safe)) continue;
      }
      record.issuerKey ??= issuerKey;
      return true;
    }
    return false;
  }

  /** Folder names under an issuer's certificates: the storage's own folder listing when it has one. */
  async #folders(issuerKey: string): Promise<string[]> {
    const { storage } = this.#options;
    if (hasFolderListing(storage)) return storage.listFolders(certificatesPrefix(issuerKey));
    return (await listCertificateNames(storage, issuerKey)).map((ref) => ref.name);
  }

  /** The whole verified set; undefined when missing or unusable (then the name is obtained again). */
  readSet(issuerKey: string, certName: string): Promise<CertificateSet | undefined> {
    return readStoredCertificate(this.#options.storage, issuerKey, certName, 'set', this.#unusable(issuerKey, certName));
  }

  /** The sidecar, with its validity read from the stored certificate (a sidecar's dates are never trusted). */
  readMeta(issuerKey: string, certName: string): Promise<CertificateMeta | undefined> {
    return readStoredCertificate(this.#options.storage, issuerKey, certName, 'meta', this.#unusable(issuerKey, certName));
  }

  /** Not expired, and covers every name of the record. */
  usable(meta: CertificateMeta, record: ManagedRecord): boolean {
    const notAfter = Date.parse(meta.notAfter);
    if (!(notAfter > this.#options.clock.now())) return false;
    return record.names.every((name) => meta.names.includes(name));
  }

  /** Serves a stored set as the record's certificate (and says so with `cert_loaded`). */
  adopt(record: ManagedRecord, set: CertificateSet): CertificateMaterial {
    const material = this.serve(record, set);
    this.#options.events.emit('cert_loaded', { names: [...record.names], issuer: record.issuerKey, notAfter: material.notAfter, source: 'storage' });
    return material;
  }

  /** Serves a set: builds its context (unless `built` already is) and swaps it in for the record's names. */
  serve(record: ManagedRecord, set: CertificateSet, built?: CertificateMaterial): CertificateMaterial {
    const { cache, defaultServerName } = this.#options;
    // Expiry was checked by usable(); a notBefore seconds ahead of our clock (CA clock skew) must not refuse a fresh certificate.
    const material = built ?? buildMaterial(set.certPem, set.keyPem, { managed: true, checkValidity: false });
    const previous = record.materialId;
    applySidecar(record, set.meta);
    record.certPem = set.certPem;
    record.materialId = material.id;
    cache.add(material, previous !== undefined ? { replaces: previous } : {});
    if (defaultServerName !== undefined && record.names.includes(defaultServerName)) cache.setDefault(material);
    this.#options.onServed(record);
    return material;
  }

  /** A truncated or mismatched set: obtain this name again, keep everything else. */
  #unusable(issuerKey: string, certName: string): (error: Error) => void {
    return (error) => this.#options.logger.warn({ err: error, name: certName, issuer: issuerKey }, 'stored certificate is unusable; it will be obtained again');
  }
}

/** Takes the stored facts of a certificate (dates, serial, backoff, ARI window) into its record. */
export function applySidecar(record: ManagedRecord, meta: CertificateMeta): void {
  record.issuerKey = meta.issuerKey;
  record.notBefore = Date.parse(meta.notBefore);
  record.notAfter = Date.parse(meta.notAfter);
  record.serialNumber = meta.serialNumber;
  record.profile = typeof meta.profile === 'string' ? meta.profile : undefined;
  record.profileRequested = record.profile !== undefined && meta.profileRequested === true;
  applySidecarBackoff(record, meta);
  // A sidecar's ARI state was written for its own certificate (fenced by serial); a set without one forgets the
  // previous certificate's window instead of keeping it (cert-manager #8993: an old window in the past renewed again).
  const ari = meta.renewal?.ari;
  if (ari) setAri(record, meta.serialNumber, { windowStart: Date.parse(ari.windowStart), windowEnd: Date.parse(ari.windowEnd), explanationUrl: ari.explanationUrl }, Date.parse(ari.selectedTime));
  else setAri(record, undefined, undefined, undefined);
}

/** The failure backoff kept in a sidecar (also of a set that is not usable: its failures still count). */
function applySidecarBackoff(record: ManagedRecord, meta: CertificateMeta): void {
  const renewal = meta.renewal;
  if (renewal && renewal.failures > 0 && renewal.nextAttemptAt) {
    record.backoff = {
      failures: renewal.failures,
      nextAttemptAt: Date.parse(renewal.nextAttemptAt),
      ...(renewal.lastError ? { lastError: { code: renewal.lastError.code, message: renewal.lastError.message, at: Date.parse(renewal.lastError.at) } } : {}),
    };
  } else {
    record.backoff = undefined;
  }
}
