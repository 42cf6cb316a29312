/**
 * The SecureContext cache behind SNICallback.
 *
 * One context per certificate, built when the certificate is added (never
 * inside a handshake for a cached name). Names map to entries; a lookup is
 * exact name, then the one-label wildcard, then (only on a miss) the loader
 * the manager gave us, then the default certificate. The cache never talks
 * to a CA or to storage itself.
 *
 * Managed certificates sit in an LRU list bounded by `capacity`; evicted ones
 * come back through the loader on their next handshake. Unmanaged
 * certificates (loaded from files or memory) cannot be reloaded from
 * anywhere, so they are never evicted and do not count against `capacity`.
 */
import { setMaxListeners } from 'node:events';
import tls, { createSecureContext } from 'node:tls';
import { CertificateInvalidError, InvalidOptionError } from '../errors.js';
import { Closable } from '../lifecycle.js';
import { wildcardFor } from '../names.js';
import { createContext, type CertificateMaterial } from './certificate-material.js';
import {
  resolveContextCacheOptions,
  validateContextOptions,
  type AddOptions,
  type ContextCacheOptions,
  type ContextCacheStats,
  type ContextOptions,
  type ResolveOptions,
  type ResolvedCacheOptions,
} from './context-cache-options.js';
import { LruList } from './lru-list.js';
import { PendingLoads } from './pending-loads.js';
import { releaseContext, replaceContext } from './released-contexts.js';
import { reportIfInvalid, servedValidity, type ServedValidity } from './served-validity.js';
export type { AddOptions, CertificateLoader, ContextCacheOptions, ContextCacheStats, ContextOptions, EvictedCertificate, InvalidServedCertificate, LoaderOptions, ResolveOptions } from './context-cache-options.js';
export { DEFAULT_CACHE_CAPACITY, DEFAULT_LOAD_TIMEOUT_MS, DEFAULT_NEGATIVE_CAPACITY, DEFAULT_NEGATIVE_TTL_MS } from '../defaults.js';

/** Contexts rebuilt per event-loop turn by setContextOptions (about 1.2 ms each). */
export const REBUILD_BATCH_SIZE = 16;

interface Entry {
  material: CertificateMaterial;
  context: tls.SecureContext;
  /** Context-options generation the context was built with. */
  generation: number;
  /** Checked on each handshake (see served-validity.ts). */
  validity: ServedValidity;
  /** Names currently pointing at this entry. */
  indexed: Set<string>;
  /** LRU links; only managed entries are in the list. */
  prev: Entry | undefined;
  next: Entry | undefined;
  inLru: boolean;
}

export class ContextCache extends Closable {
  readonly #opts: ResolvedCacheOptions;
  /** name -> entry: the index SNICallback reads. */
  readonly #index = new Map<string, Entry>();
  /** certificate id -> entry. */
  readonly #entries = new Map<string, Entry>();
  readonly #loads: PendingLoads<Entry> | undefined;
  readonly #listeners = new Set<() => void>();
  /** Managed entries, most recently used first. */
  readonly #lru = new LruList<Entry>();
  #managedCount = 0;
  #contextOptions: ContextOptions;
  #generation = 0;
  #default: { material: CertificateMaterial; context: tls.SecureContext; generation: number } | undefined;
  readonly #stats = { hits: 0, misses: 0, loads: 0, loadFailures: 0, loadTimeouts: 0, negativeHits: 0, loadsAbandoned: 0, evictions: 0 };

  constructor(options: ContextCacheOptions = {}) {
    super('ContextCache');
    // Every operation in flight listens on this long-lived signal; more than 10 at once is normal, not a leak.
    setMaxListeners(0, this.closeSignal);
    this.#opts = resolveContextCacheOptions(options);
    this.#contextOptions = validateContextOptions(options.contextOptions ?? {});
    const loader = this.#opts.loader;
    if (loader !== undefined) {
      const { loadTimeoutMs, negativeTtlMs, negativeCapacity, clock, logger } = this.#opts;
      const loads = new PendingLoads<Entry>({
        loader,
        loadTimeoutMs,
        negativeTtlMs,
        negativeCapacity,
        clock,
        logger,
        counters: this.#stats,
        signal: this.closeSignal,
        accept: (name, material) => {
          // A certificate added meanwhile (a renewal, say) is newer than what the loader read.
          const current = this.#index.get(name) ?? this.#wildcardEntry(name);
          if (current) return current;
          this.add(material);
          return this.#index.get(name) ?? this.#wildcardEntry(name) ?? this.#entries.get(material.id);
        },
      });
      this.#loads = loads;
      // Loads in flight are abandoned the moment close() is called, not once it has finished.
      this.closeSignal.addEventListener('abort', () => loads.abandonAll(), { once: true });
    }
  }

  /** Hot path: the context of an already-normalised cached name. One Map lookup; no I/O, parsing, normalisation or allocation. */
  getCached(servername: string): tls.SecureContext | undefined {
    const entry = this.#index.get(servername);
    if (entry === undefined) return undefined;
    this.#stats.hits++;
    if (entry.inLru) this.#lru.touch(entry);
    // Stale only in the moments after setContextOptions, before its background rebuild reaches this entry.
    if (entry.generation !== this.#generation) this.#rebuild(entry);
    this.#checkValidity(entry);
    return entry.context;
  }

  /** The context of an exact, normalised cached name (an IP address a connection arrived on), not counted as a hit: SNI may still choose another. */
  exactContext(name: string): tls.SecureContext | undefined {
    const entry = this.#index.get(name);
    return entry === undefined ? undefined : this.#contextOf(entry);
  }

  /**
   * Synchronous lookup of a raw SNI value among cached certificates:
   * normalise (throws InvalidNameError), exact, then wildcard. No loader.
   */
  find(servername: string): tls.SecureContext | undefined {
    const context = this.#lookupIndexed(this.#opts.normalize(servername));
    if (context !== undefined) this.#stats.hits++;
    return context;
  }

  /**
   * Full lookup for a raw SNI value: normalise (an invalid value throws
   * InvalidNameError and reaches no loader), exact, wildcard, loader, default.
   * Resolves undefined when nothing serves the name. A load shared by several
   * handshakes is abandoned (see LoaderOptions.abandoned) once all their
   * signals have aborted.
   */
  async resolve(servername: string, options: ResolveOptions = {}): Promise<tls.SecureContext | undefined> {
    this.assertOpen();
    const name = this.#opts.normalize(servername);
    const cached = this.#lookupIndexed(name);
    if (cached) {
      this.#stats.hits++;
      return cached;
    }
    this.#stats.misses++;
    const loaded = await (this.#loads?.load(name, options.signal) ?? Promise.resolve(undefined));
    if (loaded) {
      const context = this.#lookupIndexed(name);
      if (context) return context;
      this.#opts.logger?.warn({ name, names: loaded.material.names }, 'the loader returned a certificate that does not cover the name');
    }
    return this.defaultContext();
  }

  /** The default certificate's context (clients without SNI, unknown names), if any. */
  defaultContext(): tls.SecureContext | undefined {
    const d = this.#default;
    if (d === undefined) return undefined;
    if (d.generation !== this.#generation) {
      d.context = replaceContext(d.context, createContext(d.material, this.#contextOptions));
      d.generation = this.#generation;
    }
    return d.context;
  }

  get defaultMaterial(): CertificateMaterial | undefined {
    return this.#default?.material;
  }

  /** Sets (or clears, with undefined) the default certificate. */
  setDefault(material: CertificateMaterial | undefined): void {
    this.assertOpen();
    if (this.#default !== undefined) releaseContext(this.#default.context);
    this.#default = material
      ? { material, context: createContext(material, this.#contextOptions), generation: this.#generation }
      : undefined;
    this.#notify();
  }

  /**
   * Adds a certificate, or swaps it in for the names it covers. The context is
   * built first; then every name is re-pointed in one synchronous step, so the
   * next lookup gets the new context and no name is ever unmapped. Open
   * connections keep the context they started with.
   */
  add(material: CertificateMaterial, options: AddOptions = {}): void {
    this.assertOpen();
    if (material.names.length === 0) throw new CertificateInvalidError('a certificate without names cannot be served by name');
    let entry = this.#entries.get(material.id);
    if (entry === undefined) {
      entry = {
        material,
        context: createContext(material, this.#contextOptions),
        generation: this.#generation,
        validity: servedValidity(material),
        indexed: new Set(),
        prev: undefined,
        next: undefined,
        inLru: false,
      };
      this.#entries.set(material.id, entry);
      if (material.managed) {
        entry.inLru = true;
        this.#managedCount++;
        this.#lru.pushNewest(entry);
      }
    } else if (entry.inLru) {
      this.#lru.touch(entry);
    }
    for (const name of material.names) {
      const previous = this.#index.get(name);
      this.#index.set(name, entry);
      entry.indexed.add(name);
      this.#loads?.forget(name);
      if (previous !== undefined && previous !== entry) this.#unindex(previous, name);
    }
    if (options.replaces !== undefined && options.replaces !== material.id) {
      const old = this.#entries.get(options.replaces);
      if (old) for (const name of [...old.indexed]) this.#unmap(name);
    }
    this.#opts.logger?.debug({ names: material.names, serialNumber: material.serialNumber, managed: material.managed }, 'certificate cached');
    this.#evictOverCapacity(entry);
  }

  /** Swaps `material` in for the certificate `previousId` (see add). */
  replace(previousId: string, material: CertificateMaterial): void {
    this.add(material, { replaces: previousId });
  }

  /** Stops serving these names (normalised). Certificates left with no name are dropped. Loads in flight for them are discarded. */
  remove(names: Iterable<string>): void {
    for (const name of names) {
      this.#unmap(name);
      this.#loads?.cancel(name);
    }
  }

  /** Drops one certificate and every name pointing at it. */
  removeCertificate(id: string): void {
    const entry = this.#entries.get(id);
    if (entry) this.remove([...entry.indexed]);
  }

  /** The certificate a normalised name is served with right now (exact, then wildcard), without loading or touching LRU order. */
  peek(name: string): CertificateMaterial | undefined {
    return (this.#index.get(name) ?? this.#wildcardEntry(name))?.material;
  }

  has(name: string): boolean {
    return this.#index.has(name);
  }

  get contextOptions(): ContextOptions {
    return this.#contextOptions;
  }

  /**
   * Applies new secure-context options (ciphers, versions, client CAs...) to
   * every context. Invalid options throw before anything changes. From the
   * return on, every new handshake gets the new options: a context not yet
   * rebuilt by the background pass is rebuilt when next used. The promise
   * settles when the background pass has rebuilt everything.
   */
  setContextOptions(options: ContextOptions): Promise<void> {
    this.assertOpen();
    const validated = validateContextOptions(options);
    try {
      // Fails on a malformed CA bundle, unknown cipher, bad version...
      createSecureContext(validated);
    } catch (error) {
      throw new InvalidOptionError('contextOptions', `rejected by TLS: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
    }
    this.#contextOptions = validated;
    const generation = ++this.#generation;
    this.#notify();
    return this.track(this.#rebuildAll(generation));
  }

  /** Called after the default certificate or the context options change (servers re-read their own context). */
  onServerContextChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  stats(): ContextCacheStats {
    return { ...this.#stats, certificates: this.#entries.size, names: this.#index.size };
  }

  /** Drops everything once close() is called; loader calls in flight are abandoned at once (their answers are discarded). */
  protected onClose(): void {
    this.#loads?.abandonAll();
    this.#index.clear();
    this.#entries.clear();
    this.#listeners.clear();
    this.#lru.clear();
    this.#managedCount = 0;
    this.#default = undefined;
  }

  #lookupIndexed(name: string): tls.SecureContext | undefined {
    const entry = this.#index.get(name) ?? this.#wildcardEntry(name);
    return entry ? this.#contextOf(entry) : undefined;
  }

  #wildcardEntry(name: string): Entry | undefined {
    const wildcard = wildcardFor(name);
    return wildcard === undefined ? undefined : this.#index.get(wildcard);
  }

  #contextOf(entry: Entry): tls.SecureContext {
    if (entry.inLru) this.#lru.touch(entry);
    if (entry.generation !== this.#generation) this.#rebuild(entry);
    this.#checkValidity(entry);
    return entry.context;
  }

  #checkValidity(entry: Entry): void {
    const onInvalid = this.#opts.onInvalid;
    if (onInvalid === undefined) return;
    // Two comparisons on the handshake path; nothing is allocated unless the certificate is out of its validity.
    const { validity } = entry;
    const now = this.#opts.clock.now();
    if (now < validity.validUntil && now >= validity.validFrom) return;
    reportIfInvalid(validity, entry.material, now, onInvalid, () => !this.closed, this.#opts.logger);
  }

  #unmap(name: string): void {
    const entry = this.#index.get(name);
    if (entry !== undefined && this.#index.delete(name)) this.#unindex(entry, name);
  }

  /** `name` no longer points at `entry`; drop the entry once nothing points at it. */
  #unindex(entry: Entry, name: string): void {
    entry.indexed.delete(name);
    if (entry.indexed.size === 0) this.#drop(entry);
  }

  #drop(entry: Entry): void {
    this.#entries.delete(entry.material.id);
    releaseContext(entry.context);
    if (entry.inLru) {
      this.#lru.remove(entry);
      entry.inLru = false;
      this.#managedCount--;
    }
  }

  #evictOverCapacity(keep: Entry): void {
    while (this.#managedCount > this.#opts.capacity) {
      const victim = this.#lru.oldest;
      if (victim === undefined || victim === keep) break;
      const names = [...victim.indexed];
      for (const name of names) this.#index.delete(name);
      victim.indexed.clear();
      this.#drop(victim);
      this.#stats.evictions++;
      this.#opts.logger?.debug({ names }, 'certificate evicted from the TLS cache');
      try {
        this.#opts.onEvict?.({ id: victim.material.id, names });
      } catch (error) {
        this.#opts.logger?.error({ err: error }, 'onEvict listener threw');
      }
    }
  }

  #rebuild(entry: Entry): void {
    try {
      entry.context = replaceContext(entry.context, createContext(entry.material, this.#contextOptions));
    } catch (error) {
      // Options were probed before use, so this means the certificate itself no longer loads: keep the old context.
      this.#opts.logger?.error({ names: entry.material.names, err: error }, 'TLS context rebuild failed; keeping the previous context');
    }
    entry.generation = this.#generation;
  }

  async #rebuildAll(generation: number): Promise<void> {
    const entries = [...this.#entries.values()];
    for (let i = 0; i < entries.length; i++) {
      if (generation !== this.#generation || this.closed) return;
      const entry = entries[i] as Entry;
      if (entry.generation !== generation && this.#entries.get(entry.material.id) === entry) this.#rebuild(entry);
      if (i % REBUILD_BATCH_SIZE === REBUILD_BATCH_SIZE - 1) await new Promise<void>((resolve) => setImmediate(resolve));
    }
    if (generation === this.#generation && !this.closed) this.defaultContext();
    this.#opts.logger?.debug({ certificates: entries.length }, 'TLS contexts rebuilt with new options');
  }

  #notify(): void {
    for (const listener of this.#listeners) {
      try {
        listener();
      } catch (error) {
        this.#opts.logger?.error({ err: error }, 'server context listener threw');
      }
    }
  }
}
