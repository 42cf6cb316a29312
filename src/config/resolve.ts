/**
 * resolveConfig: the keeper's options, validated once into one frozen config.
 * The caller's object is never mutated, and an explicit `false` always wins
 * over a default. Each kind of setting is resolved by its own module.
 */
import { systemClock } from '../clock.js';
import { resolveDirectoryUrl } from '../acme/directories.js';
import { InvalidOptionError } from '../errors.js';
import { createDefaultLogger, validateLogger } from '../logger.js';
import { parseIdentifier } from '../names.js';
import { resolveNotify } from '../notify/options.js';
import { durationMs, email as validEmail, externalAccountBinding as validEab, optionalBoolean, optionalString, pemCertificates, positiveInteger } from '../validate.js';
import { DEFAULT_CA, DEFAULT_CACHE_CAPACITY, DEFAULT_CLOSE_TIMEOUT_MS, DEFAULT_KEY_TYPE, DEFAULT_LOG_LEVEL, DEFAULT_MAX_CONCURRENT_ORDERS, DEFAULT_RENEWAL_WINDOW_RATIO } from '../defaults.js';
import { resolveChallenges } from './challenges.js';
import { resolveKeyType, resolveProfile, validateIssuer } from './issuers.js';
import { resolveClockJump, resolveRateLimit, resolveRenewalPacing } from './limits.js';
import { resolveOnDemand } from './on-demand.js';
import { resolveRevocationCheck } from './revocation.js';
import type { CertKeeperOptions, EventListeners, IssuerSpec, ResolvedConfig } from './options.js';

const KNOWN_OPTIONS = new Set<string>([
  'email', 'agreeToTerms', 'ca', 'caCertificates', 'externalAccountBinding', 'issuers', 'storage', 'keyType',
  'challenges', 'renewalWindowRatio', 'maxConcurrentOrders', 'renewalPacing', 'rateLimit', 'onDemand', 'cacheCapacity',
  'defaultServerName', 'preferredChain', 'logger', 'logLevel', 'clock', 'on', 'closeTimeoutMs', 'notify', 'profile',
  'revocationCheck',
  'clockJump',
]);

/** Options that were renamed or removed, with a hint. */
const REMOVED_OPTIONS: Record<string, string> = {
  directoryUrl: 'use "ca" (a preset name or a directory URL)',
  agreeTos: 'use "agreeToTerms"',
  eab: 'use "externalAccountBinding"',
};

export function resolveConfig(options: CertKeeperOptions = {}): ResolvedConfig {
  if (typeof options !== 'object' || options === null) throw new InvalidOptionError('options', 'must be an object');
  for (const key of Object.keys(options)) {
    if (REMOVED_OPTIONS[key]) throw new InvalidOptionError(key, `is not an option; ${REMOVED_OPTIONS[key]}`);
    if (!KNOWN_OPTIONS.has(key)) throw new InvalidOptionError(key, 'is not a known option');
  }

  const email = validEmail(options.email, 'email');
  const agreeToTerms = optionalBoolean(options.agreeToTerms, 'agreeToTerms') ?? false;
  const ca = optionalString(options.ca, 'ca') ?? DEFAULT_CA;
  resolveDirectoryUrl(ca, 'ca');
  const caCertificates = pemCertificates(options.caCertificates, 'caCertificates');
  const externalAccountBinding = validEab(options.externalAccountBinding, 'externalAccountBinding');

  let issuers: readonly IssuerSpec[] | undefined;
  if (options.issuers !== undefined) {
    if (!Array.isArray(options.issuers) || options.issuers.length === 0) throw new InvalidOptionError('issuers', 'must be a non-empty array of issuers');
    options.issuers.forEach((issuer, i) => validateIssuer(issuer, `issuers[${i}]`));
    issuers = Object.freeze([...options.issuers]);
  }

  if (options.storage !== undefined) validateStorage(options.storage);

  const keyType = resolveKeyType(options.keyType, 'keyType') ?? DEFAULT_KEY_TYPE;
  const challenges = resolveChallenges(options.challenges, 'challenges');

  const renewalWindowRatio = options.renewalWindowRatio ?? DEFAULT_RENEWAL_WINDOW_RATIO;
  if (typeof renewalWindowRatio !== 'number' || !(renewalWindowRatio > 0 && renewalWindowRatio < 1)) {
    throw new InvalidOptionError('renewalWindowRatio', 'must be a number between 0 and 1 (exclusive)');
  }
  const maxConcurrentOrders = positiveInteger(options.maxConcurrentOrders, 'maxConcurrentOrders') ?? DEFAULT_MAX_CONCURRENT_ORDERS;
  const renewalPacing = resolveRenewalPacing(options.renewalPacing);
  const rateLimit = options.rateLimit === false ? false : options.rateLimit === undefined ? undefined : resolveRateLimit(options.rateLimit, 'rateLimit');
  const onDemand = resolveOnDemand(options.onDemand);
  const cacheCapacity = positiveInteger(options.cacheCapacity, 'cacheCapacity') ?? DEFAULT_CACHE_CAPACITY;
  let defaultServerName: string | undefined;
  if (options.defaultServerName !== undefined) {
    try {
      defaultServerName = parseIdentifier(options.defaultServerName).value;
    } catch (error) {
      throw new InvalidOptionError('defaultServerName', (error as Error).message, { cause: error });
    }
  }
  const preferredChain = optionalString(options.preferredChain, 'preferredChain');
  if (preferredChain === '') throw new InvalidOptionError('preferredChain', 'must be a non-empty issuer common name');

  const profile = resolveProfile(options.profile, 'profile');

  const logger = options.logger !== undefined ? validateLogger(options.logger) : createDefaultLogger(options.logLevel ?? DEFAULT_LOG_LEVEL);
  const clock = options.clock ?? undefined;
  if (clock !== undefined && (typeof clock.now !== 'function' || typeof clock.setTimer !== 'function')) {
    throw new InvalidOptionError('clock', 'must have now() and setTimer() methods');
  }
  const closeTimeoutMs = durationMs(options.closeTimeoutMs, 'closeTimeoutMs', true) ?? DEFAULT_CLOSE_TIMEOUT_MS;
  const notify = resolveNotify(options.notify);
  const revocationCheck = resolveRevocationCheck(options.revocationCheck);
  const on: EventListeners = {};
  if (options.on !== undefined) {
    if (typeof options.on !== 'object' || options.on === null) throw new InvalidOptionError('on', 'must be an object of event listeners');
    for (const [event, listener] of Object.entries(options.on)) {
      if (typeof listener !== 'function') throw new InvalidOptionError(`on.${event}`, 'must be a function');
      (on as Record<string, unknown>)[event] = listener;
    }
  }

  return Object.freeze({
    email,
    agreeToTerms,
    ca,
    caCertificates,
    externalAccountBinding,
    issuers,
    storage: options.storage,
    keyType,
    challenges,
    renewalWindowRatio,
    maxConcurrentOrders,
    renewalPacing,
    rateLimit,
    onDemand,
    cacheCapacity,
    defaultServerName,
    preferredChain,
    profile,
    logger,
    clock: clock ?? systemClock,
    on: Object.freeze(on),
    closeTimeoutMs,
    notify,
    revocationCheck,
    clockJump: resolveClockJump(options.clockJump),
  });
}

function validateStorage(storage: unknown): void {
  const methods = ['store', 'load', 'delete', 'exists', 'list', 'stat', 'lock', 'unlock'];
  const candidate = storage as Record<string, unknown> | null;
  if (typeof candidate !== 'object' || candidate === null) throw new InvalidOptionError('storage', 'must be a Storage object');
  for (const method of methods) {
    if (typeof candidate[method] !== 'function') throw new InvalidOptionError('storage', `must implement ${method}()`);
  }
}
