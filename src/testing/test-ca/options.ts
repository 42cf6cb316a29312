/** Validates the test CA's options once, into a frozen all-required form. */
import { systemClock, type Clock } from '../../clock.js';
import {
  DEFAULT_TEST_CA_CRL_LIFETIME_MS,
  DEFAULT_TEST_CA_OCSP,
  DEFAULT_TEST_CA_PROFILE,
  DEFAULT_TEST_CA_PROFILES,
  DEFAULT_TEST_CA_RENEWAL_INFO_RETRY_AFTER_SECONDS,
} from '../../defaults.js';
import { InvalidOptionError } from '../../errors.js';
import { validateLogger, type Logger } from '../../logger.js';
import { durationMs, optionalBoolean, pemCertificates, positiveInteger } from '../../validate.js';
import type { TestCaOptions, TestCaPebble } from './types.js';

export interface ResolvedTestCaOptions {
  pebble: Readonly<TestCaPebble>;
  profiles: ReadonlyMap<string, { lifetimeMs: number; description: string }>;
  defaultProfile: string;
  /** Profiles allowing IP identifiers; undefined: all. */
  ipProfiles: ReadonlySet<string> | undefined;
  clock: Clock;
  renewalInfoRetryAfterSeconds: number;
  crlLifetimeMs: number;
  ocsp: boolean;
  extraChallengeTypes: readonly string[];
  logger: Logger;
}

const KNOWN = new Set(['pebble', 'profiles', 'defaultProfile', 'ipProfiles', 'clock', 'renewalInfoRetryAfterSeconds', 'crlLifetimeMs', 'ocsp', 'extraChallengeTypes', 'logger']);

export function resolveTestCaOptions(options: TestCaOptions): ResolvedTestCaOptions {
  if (typeof options !== 'object' || options === null) throw new InvalidOptionError('options', 'must be an object');
  for (const key of Object.keys(options)) {
    if (!KNOWN.has(key)) throw new InvalidOptionError(key, `is not a test CA option (known: ${[...KNOWN].join(', ')})`);
  }
  const profiles = resolveProfiles(options.profiles);
  const defaultProfile = options.defaultProfile ?? (profiles.has(DEFAULT_TEST_CA_PROFILE) ? DEFAULT_TEST_CA_PROFILE : [...profiles.keys()][0]);
  if (typeof defaultProfile !== 'string' || !profiles.has(defaultProfile)) {
    throw new InvalidOptionError('defaultProfile', `must be one of the profiles offered (${[...profiles.keys()].join(', ')})`);
  }
  const clock = options.clock ?? systemClock;
  if (typeof clock?.now !== 'function') throw new InvalidOptionError('clock', 'must have a now() method');
  return Object.freeze({
    pebble: resolvePebble(options.pebble),
    profiles,
    defaultProfile,
    ipProfiles: resolveIpProfiles(options.ipProfiles, profiles),
    clock,
    renewalInfoRetryAfterSeconds: positiveInteger(options.renewalInfoRetryAfterSeconds, 'renewalInfoRetryAfterSeconds') ?? DEFAULT_TEST_CA_RENEWAL_INFO_RETRY_AFTER_SECONDS,
    crlLifetimeMs: durationMs(options.crlLifetimeMs, 'crlLifetimeMs') ?? DEFAULT_TEST_CA_CRL_LIFETIME_MS,
    ocsp: optionalBoolean(options.ocsp, 'ocsp') ?? DEFAULT_TEST_CA_OCSP,
    extraChallengeTypes: resolveExtraChallengeTypes(options.extraChallengeTypes),
    logger: options.logger === undefined ? silentLogger : validateLogger(options.logger).child({ component: 'test-ca' }),
  });
}

function resolveIpProfiles(value: unknown, profiles: ReadonlyMap<string, unknown>): ReadonlySet<string> | undefined {
  if (value === undefined) return undefined;
  if (!Array.isArray(value) || !value.every((name) => typeof name === 'string' && profiles.has(name))) {
    throw new InvalidOptionError('ipProfiles', `must be an array of offered profiles (${[...profiles.keys()].join(', ')})`);
  }
  return new Set(value as string[]);
}

function resolvePebble(pebble: unknown): Readonly<TestCaPebble> {
  if (typeof pebble !== 'object' || pebble === null) {
    throw new InvalidOptionError('pebble', 'must be { directoryUrl, managementUrl, caCertificate } of a running Pebble');
  }
  const { directoryUrl, managementUrl, caCertificate } = pebble as Record<string, unknown>;
  if (caCertificate === undefined) throw new InvalidOptionError('pebble.caCertificate', "is required: the PEM of the CA of Pebble's HTTPS certificate");
  return Object.freeze({
    directoryUrl: httpsUrl(directoryUrl, 'pebble.directoryUrl'),
    managementUrl: httpsUrl(managementUrl, 'pebble.managementUrl').replace(/\/+$/, ''),
    caCertificate: pemCertificates(caCertificate, 'pebble.caCertificate').join('\n'),
  });
}

function httpsUrl(value: unknown, option: string): string {
  if (typeof value !== 'string' || !URL.canParse(value) || new URL(value).protocol !== 'https:') {
    throw new InvalidOptionError(option, 'must be an https: URL');
  }
  return value;
}

function resolveProfiles(value: TestCaOptions['profiles']): Map<string, { lifetimeMs: number; description: string }> {
  const input = value ?? DEFAULT_TEST_CA_PROFILES;
  if (typeof input !== 'object' || input === null || Object.keys(input).length === 0) {
    throw new InvalidOptionError('profiles', 'must name at least one profile: { name: { lifetimeMs, description? } }');
  }
  const profiles = new Map<string, { lifetimeMs: number; description: string }>();
  for (const [name, profile] of Object.entries(input)) {
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) throw new InvalidOptionError('profiles', `"${name}" is not a usable profile name`);
    // X.509 validity has one-second precision.
    const lifetimeMs = durationMs(profile?.lifetimeMs, `profiles.${name}.lifetimeMs`);
    if (lifetimeMs === undefined || lifetimeMs < 1000) throw new InvalidOptionError(`profiles.${name}.lifetimeMs`, 'must be at least 1000 ms');
    const description = profile.description ?? `${name}: certificates valid for ${Math.round(lifetimeMs / 1000)} s`;
    if (typeof description !== 'string') throw new InvalidOptionError(`profiles.${name}.description`, 'must be a string');
    profiles.set(name, { lifetimeMs: Math.floor(lifetimeMs / 1000) * 1000, description });
  }
  return profiles;
}

function resolveExtraChallengeTypes(value: unknown): readonly string[] {
  if (value === undefined) return Object.freeze([]);
  if (!Array.isArray(value) || !value.every((t) => typeof t === 'string' && /^[a-z0-9][a-z0-9-]*$/.test(t))) {
    throw new InvalidOptionError('extraChallengeTypes', "must be a list of challenge type names (e.g. ['dns-persist-01'])");
  }
  return Object.freeze([...value]);
}

const silentLogger: Logger = {
  trace: () => undefined,
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
  fatal: () => undefined,
  child: () => silentLogger,
};
