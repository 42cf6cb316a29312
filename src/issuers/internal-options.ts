/**
 * The InternalIssuer's options: the public shape, and their validation into
 * a frozen config, once, without touching the caller's object.
 */
import { systemClock, type Clock } from '../clock.js';
import { InvalidOptionError } from '../errors.js';
import { createDefaultLogger, validateLogger, type Logger } from '../logger.js';
import { safeKeyComponent } from '../storage/layout.js';
import type { Storage } from '../storage/types.js';
import type { CpuOffload } from '../cpu/offload.js';
import { CLOCK_SKEW_BACKDATE_MS } from './clock-skew.js';
import { DEFAULT_INTERMEDIATE_LIFETIME_MS, DEFAULT_INTERNAL_CA_NAME, DEFAULT_LEAF_LIFETIME_MS, DEFAULT_ROOT_LIFETIME_MS } from '../defaults.js';

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
