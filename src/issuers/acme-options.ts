/**
 * The AcmeIssuer's options: the public all-optional shape, and their
 * validation into a frozen config, once, without touching the caller's object.
 */
import { systemClock, type Clock } from '../clock.js';
import { InvalidOptionError } from '../errors.js';
import { validateLogger, type Logger } from '../logger.js';
import { durationMs, email as validEmail, externalAccountBinding as validEab, optionalBoolean, pemCertificates, profilePreference } from '../validate.js';
import type { Storage } from '../storage/types.js';
import type { ExternalAccountBinding } from '../acme/account.js';
import { resolveDirectoryUrl, DIRECTORY_PRESETS, type DirectoryPreset } from '../acme/directories.js';
import { DEFAULT_RETRY_POLICY, type RetryPolicy } from '../acme/retry.js';
import { CHALLENGE_TYPES, type ChallengeType, type Solver } from '../challenges/types.js';
import {
  DEFAULT_CA,
  DEFAULT_CHALLENGE_PREFERENCE,
  DEFAULT_MAX_POLL_INTERVAL_MS,
  DEFAULT_ORDER_TIMEOUT_MS,
  DEFAULT_POLL_INTERVAL_MS,
} from '../defaults.js';

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
  /**
   * ACME profile to order under, or an ordered preference (`['tlsserver', 'classic']`): the first one the
   * directory's meta.profiles offers. A profile given to manageSync/manageAsync/obtain wins over this one.
   */
  profile?: string | string[];
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
  /** Profile preference, in order; undefined: the CA's default (or the renewed certificate's profile). */
  readonly profile: readonly string[] | undefined;
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
    profile: profilePreference(options.profile, 'profile'),
    logger: options.logger === undefined ? undefined : validateLogger(options.logger),
    clock: options.clock ?? systemClock,
    orderTimeoutMs: positiveNumber(options.orderTimeoutMs, 'orderTimeoutMs', DEFAULT_ORDER_TIMEOUT_MS),
    pollIntervalMs: positiveNumber(options.pollIntervalMs, 'pollIntervalMs', DEFAULT_POLL_INTERVAL_MS),
    maxPollIntervalMs: positiveNumber(options.maxPollIntervalMs, 'maxPollIntervalMs', DEFAULT_MAX_POLL_INTERVAL_MS),
    retry: Object.freeze(retry),
  });
}
