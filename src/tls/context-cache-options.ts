/** The TLS cache's options, its resolved settings, and the secure-context options every context is built with. */
import { X509Certificate } from 'node:crypto';
import type tls from 'node:tls';
import { systemClock, type Clock } from '../clock.js';
import { InvalidOptionError } from '../errors.js';
import { validateLogger, type Logger } from '../logger.js';
import { normalizeServerName } from '../names.js';
import { durationMs, positiveInteger } from '../validate.js';
import { splitPemCertificates, type CertificateMaterial } from './certificate-material.js';
import { DEFAULT_CACHE_CAPACITY, DEFAULT_LOAD_TIMEOUT_MS, DEFAULT_NEGATIVE_CAPACITY, DEFAULT_NEGATIVE_TTL_MS } from '../defaults.js';

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

/** A managed certificate answered a handshake while expired or not yet valid by the cache's clock. */
export interface InvalidServedCertificate {
  material: CertificateMaterial;
  reason: 'expired' | 'not_yet_valid';
  now: number;
}

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
  /**
   * Told, after the handshake and at most once per certificate every DEFAULT_INVALID_SERVED_RECHECK_MS, that a
   * managed certificate answered a handshake while expired or not yet valid (a sleep or clock jump outran its renewal).
   */
  onInvalid?: (invalid: InvalidServedCertificate) => void;
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

const CONTEXT_OPTION_BLOCKLIST = ['cert', 'key', 'pfx', 'passphrase'] as const;

export interface ResolvedCacheOptions {
  capacity: number;
  loader: CertificateLoader | undefined;
  loadTimeoutMs: number;
  negativeTtlMs: number;
  negativeCapacity: number;
  onEvict: ((evicted: EvictedCertificate) => void) | undefined;
  onInvalid: ((invalid: InvalidServedCertificate) => void) | undefined;
  logger: Logger | undefined;
  clock: Clock;
  normalize: (servername: string) => string;
}

export function resolveContextCacheOptions(options: ContextCacheOptions): ResolvedCacheOptions {
  if (options.loader !== undefined && typeof options.loader !== 'function') throw new InvalidOptionError('loader', 'must be a function');
  if (options.onEvict !== undefined && typeof options.onEvict !== 'function') throw new InvalidOptionError('onEvict', 'must be a function');
  if (options.onInvalid !== undefined && typeof options.onInvalid !== 'function') throw new InvalidOptionError('onInvalid', 'must be a function');
  return Object.freeze({
    capacity: positiveInteger(options.capacity, 'capacity') ?? DEFAULT_CACHE_CAPACITY,
    loader: options.loader,
    loadTimeoutMs: durationMs(options.loadTimeoutMs, 'loadTimeoutMs', false, true) ?? DEFAULT_LOAD_TIMEOUT_MS,
    negativeTtlMs: durationMs(options.negativeTtlMs, 'negativeTtlMs', true, true) ?? DEFAULT_NEGATIVE_TTL_MS,
    negativeCapacity: positiveInteger(options.negativeCapacity, 'negativeCapacity') ?? DEFAULT_NEGATIVE_CAPACITY,
    onEvict: options.onEvict,
    onInvalid: options.onInvalid,
    logger: options.logger === undefined ? undefined : validateLogger(options.logger).child({ component: 'tls-cache' }),
    clock: options.clock ?? systemClock,
    normalize: options.normalize ?? normalizeServerName,
  });
}

export function validateContextOptions(options: unknown): ContextOptions {
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
