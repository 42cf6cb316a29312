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
import { X509Certificate } from 'node:crypto';
import tls, { createSecureContext } from 'node:tls';
import { systemClock, type Clock, type TimerHandle } from '../clock.js';
import { CertificateInvalidError, ClosedError, InvalidOptionError, OnDemandBusyError } from '../errors.js';
import { validateLogger, type Logger } from '../logger.js';
import { normalizeServerName, wildcardFor } from '../names.js';
import { createContext, splitPemCertificates, type CertificateMaterial } from './certificate-material.js';
import { DEFAULT_CACHE_CAPACITY, DEFAULT_LOAD_TIMEOUT_MS, DEFAULT_NEGATIVE_CAPACITY, DEFAULT_NEGATIVE_TTL_MS } from '../defaults.js';
export { DEFAULT_CACHE_CAPACITY, DEFAULT_LOAD_TIMEOUT_MS, DEFAULT_NEGATIVE_TTL_MS, DEFAULT_NEGATIVE_CAPACITY };

/** Contexts rebuilt per event-loop turn by setContextOptions (about 1.2 ms each). */
export const REBUILD_BATCH_SIZE = 16;

export interface LoaderOptions {
  /** Aborted when the cache is closed. */
  signal: AbortSignal;
  /**
   * Aborted when the cache is closed or every handshake waiting for this load has gone away: work that only
   * serves those handshakes (an on-demand decision) can stop. The answer of an abandoned load is not remembered.
   */
  abandoned: AbortSignal;
}

export interface ResolveOptions {
  /** Aborts when the handshake asking has gone away (its socket closed). */
  signal?: AbortSignal | undefined;
}

/**
 * Returns a certificate covering `name` (its own or a wildcard), or undefined
 * when there is none. `name` is already normalised and valid.
 */
export type CertificateLoader = (name: string, options: LoaderOptions) => Promise<CertificateMaterial | undefined>;

export interface EvictedCertificate {
  id: string;
  names: string[];
}

/** Secure-context options applied to every context (not cert, key, pfx, passphrase). */
export type ContextOptions = Omit<tls.SecureContextOptions, 'cert' | 'key' | 'pfx' | 'passphrase'>;

export interface ContextCacheOptions {
  /** Most managed certificates held at once; default DEFAULT_CACHE_CAPACITY. */
  capacity?: number;
  loader?: CertificateLoader;
  /** How long a handshake waits for the loader; default DEFAULT_LOAD_TIMEOUT_MS. */
  loadTimeoutMs?: number;
  /** How long a name the loader did not find is remembered; default DEFAULT_NEGATIVE_TTL_MS; 0 disables. */
  negativeTtlMs?: number;
  /** Most names remembered as missing; default DEFAULT_NEGATIVE_CAPACITY. */
  negativeCapacity?: number;
  contextOptions?: ContextOptions;
  onEvict?: (evicted: EvictedCertificate) => void;
  logger?: Logger;
  clock?: Clock;
  /** SNI normalisation; injectable so tests can count calls. Default normalizeServerName. */
  normalize?: (servername: string) => string;
}

export interface ContextCacheStats {
  hits: number;
  misses: number;
  /** Loader calls started. */
  loads: number;
  loadFailures: number;
  loadTimeouts: number;
  /** Names answered from the negative cache, without a loader call. */
  negativeHits: number;
  /** Loads abandoned because every handshake waiting for them went away. */
  loadsAbandoned: number;
  evictions: number;
  /** Certificates held (managed and unmanaged). */
  certificates: number;
  /** Names indexed. */
  names: number;
}

export interface AddOptions {
  /** Id of the certificate this one replaces: names it served that the new one lacks are dropped too. */
  replaces?: string | undefined;
}

interface Entry {
  material: CertificateMaterial;
  context: tls.SecureContext;
  /** Context-options generation the context was built with. */
  generation: number;
  /** Names currently pointing at this entry. */
  indexed: Set<string>;
  /** LRU links; only managed entries are in the list. */
  prev: Entry | undefined;
  next: Entry | undefined;
  inLru: boolean;
}

interface PendingLoad {
  /** Resolves at the loader's answer or at the timeout, whichever is first. */
  result: Promise<Entry | undefined>;
  /** Set by remove(): the answer must not bring the name back. */
  cancelled: boolean;
  /** Handshakes waiting with a signal that has not aborted. */
  waiters: number;
  /** A caller without a signal waits: the load is never abandoned. */
  pinned: boolean;
  abandon: AbortController;
}

const CONTEXT_OPTION_BLOCKLIST = ['cert', 'key', 'pfx', 'passphrase'] as const;

interface Resolved {
  capacity: number;
  loader: CertificateLoader | undefined;
  loadTimeoutMs: number;
  negativeTtlMs: number;
  negativeCapacity: number;
  onEvict: ((evicted: EvictedCertificate) => void) | undefined;
  logger: Logger | undefined;
  clock: Clock;
  normalize: (servername: string) => string;
}

function resolveOptions(options: ContextCacheOptions): Resolved {
  const count = (name: keyof ContextCacheOptions, value: unknown, fallback: number, min: number): number => {
    if (value === undefined) return fallback;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
      throw new InvalidOptionError(name, `must be an integer >= ${min}`);
    }
    return value;
  };
  if (options.loader !== undefined && typeof options.loader !== 'function') throw new InvalidOptionError('loader', 'must be a function');
  if (options.onEvict !== undefined && typeof options.onEvict !== 'function') throw new InvalidOptionError('onEvict', 'must be a function');
  return Object.freeze({
    capacity: count('capacity', options.capacity, DEFAULT_CACHE_CAPACITY, 1),
    loader: options.loader,
    loadTimeoutMs: count('loadTimeoutMs', options.loadTimeoutMs, DEFAULT_LOAD_TIMEOUT_MS, 1),
    negativeTtlMs: count('negativeTtlMs', options.negativeTtlMs, DEFAULT_NEGATIVE_TTL_MS, 0),
    negativeCapacity: count('negativeCapacity', options.negativeCapacity, DEFAULT_NEGATIVE_CAPACITY, 1),
    onEvict: options.onEvict,
    logger: options.logger === undefined ? undefined : validateLogger(options.logger).child({ component: 'tls-cache' }),
    clock: options.clock ?? systemClock,
    normalize: options.normalize ?? normalizeServerName,
  });
}

function validateContextOptions(options: unknown): ContextOptions {
  if (typeof options !== 'object' || options === null) throw new InvalidOptionError('contextOptions', 'must be an object');
  for (const key of CONTEXT_OPTION_BLOCKLIST) {
    if ((options as Record<string, unknown>)[key] !== undefined) {
      throw new InvalidOptionError(`contextOptions.${key}`, 'certificates and keys come from the cache, not from the context options');
    }
  }
  const ca = (options as ContextOptions).ca;
  if (ca !== undefined) {
    // Node silently ignores text that is not PEM, which would leave an mTLS server trusting nobody (or fewer CAs) unnoticed.
    const items = Array.isArray(ca) ? ca : [ca];
    for (const [index, item] of items.entries()) {
      const blocks = splitPemCertificates(item.toString());
      if (blocks.length === 0) throw new InvalidOptionError('ca', `entry ${index + 1} holds no PEM certificate`);
      for (const block of blocks) {
        try {
          new X509Certificate(block);
        } catch (error) {
          throw new InvalidOptionError('ca', `entry ${index + 1} holds a certificate that does not parse`, { cause: error });
        }
      }
    }
  }
  return Object.freeze({ ...(options as ContextOptions) });
}

export class ContextCache {
  readonly #opts: Resolved;
  /** name -> entry: the index SNICallback reads. */
  readonly #index = new Map<string, Entry>();
  /** certificate id -> entry. */
  readonly #entries = new Map<string, Entry>();
  readonly #pending = new Map<string, PendingLoad>();
  /** name -> time the negative answer expires; insertion order = age, for bounded FIFO trimming. */
  readonly #negative = new Map<string, number>();
  readonly #closeController = new AbortController();
  readonly #listeners = new Set<() => void>();
  readonly #timers = new Set<TimerHandle>();
  #head: Entry | undefined;
  #tail: Entry | undefined;
  #managedCount = 0;
  #contextOptions: ContextOptions;
  #generation = 0;
  #default: { material: CertificateMaterial; context: tls.SecureContext; generation: number } | undefined;
  #closed = false;
  readonly #stats = { hits: 0, misses: 0, loads: 0, loadFailures: 0, loadTimeouts: 0, negativeHits: 0, loadsAbandoned: 0, evictions: 0 };

  constructor(options: ContextCacheOptions = {}) {
    // Every operation in flight listens on this long-lived signal; more than 10 at once is normal, not a leak.
    setMaxListeners(0, this.#closeController.signal);
    this.#opts = resolveOptions(options);
    this.#contextOptions = validateContextOptions(options.contextOptions ?? {});
  }

  /**
   * Hot path: the context for an already-normalised cached name, or undefined.
   * One Map lookup; no I/O, parsing, normalisation or allocation.
   */
  getCached(servername: string): tls.SecureContext | undefined {
    const entry = this.#index.get(servername);
    if (entry === undefined) return undefined;
    this.#stats.hits++;
    if (entry.inLru) this.#touch(entry);
    // Stale only in the moments after setContextOptions, before its background rebuild reaches this entry.
    if (entry.generation !== this.#generation) this.#rebuild(entry);
    return entry.context;
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
    if (this.#closed) throw new ClosedError('ContextCache');
    const name = this.#opts.normalize(servername);
    const cached = this.#lookupIndexed(name);
    if (cached) {
      this.#stats.hits++;
      return cached;
    }
    this.#stats.misses++;
    const loaded = await this.#load(name, options.signal);
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
      d.context = createContext(d.material, this.#contextOptions);
      d.generation = this.#generation;
    }
    return d.context;
  }

  get defaultMaterial(): CertificateMaterial | undefined {
    return this.#default?.material;
  }

  /** Sets (or clears, with undefined) the default certificate. */
  setDefault(material: CertificateMaterial | undefined): void {
    this.#assertOpen();
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
    this.#assertOpen();
    if (material.names.length === 0) throw new CertificateInvalidError('a certificate without names cannot be served by name');
    let entry = this.#entries.get(material.id);
    if (entry === undefined) {
      entry = {
        material,
        context: createContext(material, this.#contextOptions),
        generation: this.#generation,
        indexed: new Set(),
        prev: undefined,
        next: undefined,
        inLru: false,
      };
      this.#entries.set(material.id, entry);
      if (material.managed) {
        entry.inLru = true;
        this.#managedCount++;
        this.#pushHead(entry);
      }
    } else if (entry.inLru) {
      this.#touch(entry);
    }
    for (const name of material.names) {
      const previous = this.#index.get(name);
      this.#index.set(name, entry);
      entry.indexed.add(name);
      this.#negative.delete(name);
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
      this.#negative.delete(name);
      const pending = this.#pending.get(name);
      if (pending) pending.cancelled = true;
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
    this.#assertOpen();
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
    return this.#rebuildAll(generation);
  }

  /** Called after the default certificate or the context options change (servers re-read their own context). */
  onServerContextChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  stats(): ContextCacheStats {
    return { ...this.#stats, certificates: this.#entries.size, names: this.#index.size };
  }

  /** Drops everything, aborts loader calls in flight (their answers are discarded), cancels timers. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#closeController.abort(new ClosedError('ContextCache'));
    for (const pending of this.#pending.values()) pending.abandon.abort(new ClosedError('ContextCache'));
    for (const timer of this.#timers) timer.cancel();
    this.#timers.clear();
    this.#index.clear();
    this.#entries.clear();
    this.#pending.clear();
    this.#negative.clear();
    this.#listeners.clear();
    this.#head = this.#tail = undefined;
    this.#managedCount = 0;
    this.#default = undefined;
  }

  #assertOpen(): void {
    if (this.#closed) throw new ClosedError('ContextCache');
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
    if (entry.inLru) this.#touch(entry);
    if (entry.generation !== this.#generation) this.#rebuild(entry);
    return entry.context;
  }

  #load(name: string, signal: AbortSignal | undefined): Promise<Entry | undefined> {
    const loader = this.#opts.loader;
    if (loader === undefined) return Promise.resolve(undefined);
    const existing = this.#pending.get(name);
    if (existing) return this.#wait(name, existing, signal);
    const negativeUntil = this.#negative.get(name);
    if (negativeUntil !== undefined) {
      if (negativeUntil > this.#opts.clock.now()) {
        this.#stats.negativeHits++;
        return Promise.resolve(undefined);
      }
      this.#negative.delete(name);
    }

    this.#stats.loads++;
    const log = this.#opts.logger;
    const pending: PendingLoad = { result: Promise.resolve(undefined), cancelled: false, waiters: 0, pinned: false, abandon: new AbortController() };
    // Aborted by close() as well (no AbortSignal.any: it would hang one dependent per load on the long-lived close signal).
    const abandoned = pending.abandon.signal;
    const answer = (async (): Promise<Entry | undefined> => {
      try {
        const material = await loader(name, { signal: this.#closeController.signal, abandoned });
        if (this.#closed || pending.cancelled) return undefined;
        if (material === undefined) {
          // An abandoned load has no answer worth remembering: the next handshake for the name asks again.
          if (!abandoned.aborted) this.#rememberMissing(name);
          return undefined;
        }
        // A certificate added meanwhile (a renewal, say) is newer than what the loader read.
        const current = this.#index.get(name) ?? this.#wildcardEntry(name);
        if (current) return current;
        this.add(material);
        return this.#index.get(name) ?? this.#wildcardEntry(name) ?? this.#entries.get(material.id);
      } catch (error) {
        if (this.#closed) return undefined;
        if (error instanceof OnDemandBusyError) {
          // Refused for lack of capacity, not for the name: nothing to remember, and at flood rate, nothing to warn about.
          log?.debug({ name }, error.message);
          return undefined;
        }
        this.#stats.loadFailures++;
        this.#rememberMissing(name);
        log?.warn({ name, err: error }, 'certificate load failed');
        return undefined;
      } finally {
        if (this.#pending.get(name) === pending) this.#pending.delete(name);
      }
    })();

    pending.result = new Promise<Entry | undefined>((resolve) => {
      const timer = this.#opts.clock.setTimer(() => {
        this.#timers.delete(timer);
        this.#stats.loadTimeouts++;
        log?.warn({ name, timeoutMs: this.#opts.loadTimeoutMs }, 'certificate load timed out; handshake continues without it');
        resolve(undefined);
      }, this.#opts.loadTimeoutMs);
      this.#timers.add(timer);
      void answer.then((entry) => {
        timer.cancel();
        this.#timers.delete(timer);
        resolve(entry);
      });
    });
    this.#pending.set(name, pending);
    return this.#wait(name, pending, signal);
  }

  /** One handshake waits for a load; when the last one with a signal leaves (and none without), the load is abandoned. */
  #wait(name: string, pending: PendingLoad, signal: AbortSignal | undefined): Promise<Entry | undefined> {
    if (signal === undefined) {
      pending.pinned = true;
      return pending.result;
    }
    const leave = (): void => {
      pending.waiters--;
      if (pending.waiters > 0 || pending.pinned || pending.abandon.signal.aborted) return;
      this.#stats.loadsAbandoned++;
      // A handshake arriving from now on starts a load of its own instead of joining one that is stopping.
      if (this.#pending.get(name) === pending) this.#pending.delete(name);
      pending.abandon.abort();
    };
    pending.waiters++;
    if (signal.aborted) {
      leave();
      return pending.result;
    }
    signal.addEventListener('abort', leave, { once: true });
    void pending.result.then(() => signal.removeEventListener('abort', leave));
    return pending.result;
  }

  #rememberMissing(name: string): void {
    if (this.#opts.negativeTtlMs === 0) return;
    this.#negative.delete(name);
    while (this.#negative.size >= this.#opts.negativeCapacity) {
      const oldest = this.#negative.keys().next();
      if (oldest.done) break;
      this.#negative.delete(oldest.value);
    }
    this.#negative.set(name, this.#opts.clock.now() + this.#opts.negativeTtlMs);
  }

  #unmap(name: string): void {
    const entry = this.#index.get(name);
    if (entry === undefined) return;
    this.#index.delete(name);
    this.#unindex(entry, name);
  }

  /** `name` no longer points at `entry`; drop the entry once nothing points at it. */
  #unindex(entry: Entry, name: string): void {
    entry.indexed.delete(name);
    if (entry.indexed.size === 0) this.#drop(entry);
  }

  #drop(entry: Entry): void {
    this.#entries.delete(entry.material.id);
    if (entry.inLru) {
      this.#unlink(entry);
      entry.inLru = false;
      this.#managedCount--;
    }
  }

  #evictOverCapacity(keep: Entry): void {
    while (this.#managedCount > this.#opts.capacity) {
      const victim = this.#tail;
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
      entry.context = createContext(entry.material, this.#contextOptions);
    } catch (error) {
      // Options were probed before use, so this means the certificate itself no longer loads: keep the old context.
      this.#opts.logger?.error({ names: entry.material.names, err: error }, 'TLS context rebuild failed; keeping the previous context');
    }
    entry.generation = this.#generation;
  }

  async #rebuildAll(generation: number): Promise<void> {
    const entries = [...this.#entries.values()];
    for (let i = 0; i < entries.length; i++) {
      if (generation !== this.#generation || this.#closed) return;
      const entry = entries[i] as Entry;
      if (entry.generation !== generation && this.#entries.get(entry.material.id) === entry) this.#rebuild(entry);
      if (i % REBUILD_BATCH_SIZE === REBUILD_BATCH_SIZE - 1) await new Promise<void>((resolve) => setImmediate(resolve));
    }
    if (generation === this.#generation && !this.#closed) this.defaultContext();
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

  #pushHead(entry: Entry): void {
    entry.prev = undefined;
    entry.next = this.#head;
    if (this.#head) this.#head.prev = entry;
    this.#head = entry;
    if (this.#tail === undefined) this.#tail = entry;
  }

  #unlink(entry: Entry): void {
    if (entry.prev) entry.prev.next = entry.next;
    else this.#head = entry.next;
    if (entry.next) entry.next.prev = entry.prev;
    else this.#tail = entry.prev;
    entry.prev = entry.next = undefined;
  }

  #touch(entry: Entry): void {
    if (this.#head === entry) return;
    this.#unlink(entry);
    this.#pushHead(entry);
  }
}
