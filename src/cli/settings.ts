/**
 * The CLI's settings, taken from three sources in this order of precedence:
 * command-line flags, then CERTKEEPER_* environment variables, then an
 * optional JSON config file (`--config` or CERTKEEPER_CONFIG). Resolution is
 * a pure function so the precedence rule is tested without a process.
 */
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { InvalidOptionError } from '../errors.js';
import type { KeyType } from '../issuers/types.js';
import { KEY_TYPES } from '../issuers/types.js';
import type { LogLevel } from '../logger.js';
import { dnsSettingsFrom } from './dns-settings.js';
import { NOTIFY_ENV, NOTIFY_FLAGS, resolveNotifySetting, type CliNotifySettings } from './notify-settings.js';
import { parseStorageUrl } from '../storage/url.js';
import { email as validEmail, portText } from '../validate.js';
import { DEFAULT_CA, DEFAULT_CLI_LOG_LEVEL, DEFAULT_DEMO_PORT, DEFAULT_HTTP01_PORT, DEFAULT_TLS_ALPN01_PORT } from '../defaults.js';
import { DEFAULT_LOG_FORMAT } from '../defaults.js';
export { DEFAULT_LOG_FORMAT };
export { DEFAULT_CLI_LOG_LEVEL, DEFAULT_DEMO_PORT };

export type CliIssuer = 'acme' | 'internal';

/** Human text everywhere by default (as conventional tools do); JSON only when asked. */
export type LogFormat = 'human' | 'json';
export const LOG_FORMATS: readonly LogFormat[] = ['human', 'json'];

/** Every setting a command may use; each one can come from a flag, the environment or the config file. */
export interface CliSettings {
  /** An absolute directory, or a storage URL (redis://, postgres://, etcd://) as given: print it through redactStorageUrl(). */
  readonly storage: string;
  readonly issuer: CliIssuer;
  readonly ca: string;
  readonly email: string | undefined;
  readonly agreeToTerms: boolean;
  /** PEM file trusted for the CA's own HTTPS (a private ACME server). */
  readonly caRoot: string | undefined;
  readonly httpPort: number;
  readonly httpHost: string;
  readonly tlsAlpnPort: number;
  readonly tlsAlpnHost: string;
  readonly keyType: KeyType | undefined;
  /** DNS server (host:port) for doctor's A/AAAA/CAA lookups; default the system's resolvers. */
  readonly resolver: string | undefined;
  readonly logLevel: LogLevel;
  /** `human` (default): one line per log record; `json`: pino JSON lines. */
  readonly logFormat: LogFormat;
  /** DNS-01 provider settings (see cli/dns.ts); from the config file or CERTKEEPER_DNS (JSON), no flag: it may hold secrets. */
  readonly dns: Readonly<Record<string, unknown>> | undefined;
  /** Print only failures: no progress, tables or confirmations; log level error unless one is set. Errors and exit codes are unchanged. */
  readonly quiet: boolean;
  /** Notifications (see cli/notify-settings.ts): each field from its flag, CERTKEEPER_NOTIFY_* variable or the file's `notify`. */
  readonly notify: CliNotifySettings | undefined;
}

/** Raw values as a source gives them (strings from flags and env, any JSON type from the file). */
export type SettingsInput = { [K in keyof CliSettings]?: unknown };

interface SettingSpec {
  env: string;
  flag: string;
  parse: (value: unknown, from: string) => unknown;
}

const LOG_LEVELS: readonly LogLevel[] = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

export const SETTINGS: { readonly [K in keyof CliSettings]: SettingSpec } = {
  storage: { env: 'CERTKEEPER_STORAGE', flag: '--storage', parse: storageValue },
  issuer: { env: 'CERTKEEPER_ISSUER', flag: '--issuer', parse: (v, from) => oneOf(v, from, ['acme', 'internal']) },
  ca: { env: 'CERTKEEPER_CA', flag: '--ca', parse: nonEmptyString },
  email: { env: 'CERTKEEPER_EMAIL', flag: '--email', parse: (v, from) => validEmail(nonEmptyString(v, from), from) },
  agreeToTerms: { env: 'CERTKEEPER_AGREE_TO_TERMS', flag: '--agree-to-terms', parse: booleanValue },
  caRoot: { env: 'CERTKEEPER_CA_ROOT', flag: '--ca-root', parse: nonEmptyString },
  httpPort: { env: 'CERTKEEPER_HTTP_PORT', flag: '--http-port', parse: portValue },
  httpHost: { env: 'CERTKEEPER_HTTP_HOST', flag: '--http-host', parse: stringValue },
  tlsAlpnPort: { env: 'CERTKEEPER_TLS_ALPN_PORT', flag: '--tls-alpn-port', parse: portValue },
  tlsAlpnHost: { env: 'CERTKEEPER_TLS_ALPN_HOST', flag: '--tls-alpn-host', parse: stringValue },
  keyType: { env: 'CERTKEEPER_KEY_TYPE', flag: '--key-type', parse: (v, from) => oneOf(v, from, KEY_TYPES) },
  resolver: { env: 'CERTKEEPER_RESOLVER', flag: '--resolver', parse: nonEmptyString },
  logLevel: { env: 'CERTKEEPER_LOG_LEVEL', flag: '--log-level', parse: (v, from) => oneOf(v, from, LOG_LEVELS) },
  logFormat: { env: 'CERTKEEPER_LOG_FORMAT', flag: '--log-format', parse: (v, from) => oneOf(v, from, LOG_FORMATS) },
  dns: { env: 'CERTKEEPER_DNS', flag: '(config file or CERTKEEPER_DNS only)', parse: dnsSettingsFrom },
  quiet: { env: 'CERTKEEPER_QUIET', flag: '--quiet', parse: booleanValue },
  // Resolved field by field (resolveNotifySetting), not by pick(): these name its main flag and variable.
  notify: { env: NOTIFY_ENV.webhook, flag: NOTIFY_FLAGS.webhook, parse: (v) => v },
};

export const CONFIG_ENV = 'CERTKEEPER_CONFIG';

export interface SettingsSources {
  flags: SettingsInput;
  env: NodeJS.ProcessEnv;
  /** Parsed JSON config file, if any. */
  file?: SettingsInput | undefined;
  /** Directory relative paths in the config file are resolved against (the file's directory). */
  fileDir?: string | undefined;
  cwd: string;
}

/** Default storage root of the CLI: the library's FileStorage default. */
export function defaultStorageRoot(env: NodeJS.ProcessEnv): string {
  const xdg = env.XDG_DATA_HOME;
  if (xdg && isAbsolute(xdg)) return join(xdg, 'certkeeper');
  return join(env.HOME && isAbsolute(env.HOME) ? env.HOME : homedir(), '.local', 'share', 'certkeeper');
}

/** The demo's own storage root, kept apart from real certificates. */
export function defaultDemoStorageRoot(env: NodeJS.ProcessEnv): string {
  const xdg = env.XDG_DATA_HOME;
  if (xdg && isAbsolute(xdg)) return join(xdg, 'certkeeper-demo');
  return join(env.HOME && isAbsolute(env.HOME) ? env.HOME : homedir(), '.local', 'share', 'certkeeper-demo');
}

/** Flags win over the environment, which wins over the config file; unset settings get their defaults. */
export function resolveCliSettings(sources: SettingsSources, defaults: { storage?: string } = {}): CliSettings {
  const pick = <K extends keyof CliSettings>(key: K): CliSettings[K] | undefined => {
    const spec = SETTINGS[key];
    const flag = sources.flags[key];
    if (flag !== undefined) return spec.parse(flag, spec.flag) as CliSettings[K];
    const env = sources.env[spec.env];
    if (env !== undefined && env !== '') return spec.parse(env, spec.env) as CliSettings[K];
    const file = sources.file?.[key];
    if (file !== undefined) return spec.parse(file, `config file "${key}"`) as CliSettings[K];
    return undefined;
  };
  const fromFile = (key: 'storage' | 'caRoot'): boolean =>
    sources.flags[key] === undefined && !sources.env[SETTINGS[key].env] && sources.file?.[key] !== undefined;
  const path = (key: 'storage' | 'caRoot', value: string | undefined): string | undefined =>
    value === undefined ? undefined : resolve(fromFile(key) ? (sources.fileDir ?? sources.cwd) : sources.cwd, value);
  // A storage URL stays as given (checked here, once); a directory or file: URL becomes an absolute path.
  const storage = (value: string | undefined): string | undefined => {
    if (value === undefined) return undefined;
    const location = parseStorageUrl(value, fromFile('storage') ? (sources.fileDir ?? sources.cwd) : sources.cwd);
    return location.kind === 'file' ? location.root : value;
  };

  const issuer = pick('issuer') ?? 'acme';
  const quiet = pick('quiet') ?? false;
  return Object.freeze({
    storage: storage(pick('storage')) ?? defaults.storage ?? defaultStorageRoot(sources.env),
    issuer,
    ca: pick('ca') ?? DEFAULT_CA,
    email: pick('email'),
    agreeToTerms: pick('agreeToTerms') ?? false,
    caRoot: path('caRoot', pick('caRoot')),
    httpPort: pick('httpPort') ?? DEFAULT_HTTP01_PORT,
    httpHost: pick('httpHost') ?? '',
    tlsAlpnPort: pick('tlsAlpnPort') ?? DEFAULT_TLS_ALPN01_PORT,
    tlsAlpnHost: pick('tlsAlpnHost') ?? '',
    keyType: pick('keyType'),
    resolver: pick('resolver'),
    logLevel: pick('logLevel') ?? (quiet ? 'error' : DEFAULT_CLI_LOG_LEVEL),
    logFormat: pick('logFormat') ?? DEFAULT_LOG_FORMAT,
    dns: pick('dns'),
    quiet,
    notify: resolveNotifySetting({ flags: sources.flags.notify, env: sources.env, file: sources.file?.notify, fileDir: sources.fileDir, cwd: sources.cwd }),
  });
}

/** The parsed JSON of a `--config` file (the CLI's and the daemon's); InvalidOptionError when unreadable or not JSON. */
export function readJsonConfig(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new InvalidOptionError('--config', `cannot read ${path}: ${(error as Error).message}`, { cause: error });
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new InvalidOptionError('--config', `${path} is not valid JSON: ${(error as Error).message}`, { cause: error });
  }
}

/** Reads the JSON config file; unknown keys are refused so a typo is not silently ignored. */
export function readConfigFile(path: string): SettingsInput {
  const parsed = readJsonConfig(path);
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new InvalidOptionError('--config', `${path} must hold a JSON object`);
  for (const key of Object.keys(parsed)) {
    if (!Object.hasOwn(SETTINGS, key)) {
      throw new InvalidOptionError('--config', `${path}: unknown setting "${key}" (known: ${Object.keys(SETTINGS).join(', ')})`);
    }
  }
  return parsed as SettingsInput;
}

/** A directory or a storage URL; a URL is checked here so a bad one names its source. */
function storageValue(value: unknown, from: string): string {
  const text = nonEmptyString(value, from);
  parseStorageUrl(text, '/', from);
  return text;
}

function stringValue(value: unknown, from: string): string {
  if (typeof value !== 'string') throw new InvalidOptionError(from, 'must be a string');
  return value;
}

function nonEmptyString(value: unknown, from: string): string {
  const text = stringValue(value, from);
  if (text.length === 0) throw new InvalidOptionError(from, 'must not be empty');
  return text;
}

function oneOf<T extends string>(value: unknown, from: string, allowed: readonly T[]): T {
  if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
    throw new InvalidOptionError(from, `must be one of ${allowed.join(', ')}`);
  }
  return value as T;
}

function booleanValue(value: unknown, from: string): boolean {
  if (typeof value === 'boolean') return value;
  if (typeof value === 'string') {
    if (/^(1|true|yes|on)$/i.test(value)) return true;
    if (/^(0|false|no|off)$/i.test(value)) return false;
  }
  throw new InvalidOptionError(from, 'must be true or false (1/0, yes/no)');
}

function portValue(value: unknown, from: string): number {
  return portText(value, from) as number;
}
