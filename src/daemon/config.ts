/**
 * The daemon's configuration file (`certkeeper run --config certkeeper.json`):
 * every CLI setting (storage, ca, email, dns, ...: resolved by the CLI's own
 * resolveCliSettings, flags and CERTKEEPER_* winning as for every command),
 * plus what a daemon needs: the certificates, where their files go, the
 * deploy hooks, how HTTP-01 is answered, notifications. Validated whole into
 * one frozen DaemonConfig before anything runs, so a bad file (at start or on
 * SIGHUP) is an InvalidOptionError naming the field and the file, and nothing
 * is touched.
 */
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { readJsonConfig, resolveCliSettings, SETTINGS, type CliSettings, type SettingsInput } from '../cli/settings.js';
import { InvalidOptionError } from '../errors.js';
import { parseIdentifier } from '../names.js';
import type { NotifyOptions } from '../notify/options.js';
import { notifyOptionsFrom } from '../cli/notify-settings.js';
import { safeKeyComponent } from '../storage/layout.js';
import { port as validPort } from '../validate.js';
import { DEFAULT_CHALLENGE_PROXY_HOST } from '../defaults.js';
import { accountId, type AccountDatabases } from './accounts.js';
import { resolveFileSettings, resolveHooks, type DeployHookConfig, type FileSettings } from './config-parts.js';

export type { DeployHookConfig, FileSettings };

/** How HTTP-01 challenges reach the daemon. */
export type Http01Config =
  /** Token files under `<webroot>/.well-known/acme-challenge/`, served by the web server already there (certbot --webroot). */
  | { readonly mode: 'webroot'; readonly webroot: string | undefined }
  /** The daemon's own listener while a challenge is pending (port 80 by default; the httpPort/httpHost settings). */
  | { readonly mode: 'listener'; readonly port: number; readonly host: string }
  /** A small HTTP endpoint of the daemon that the web server proxies `/.well-known/acme-challenge/` to. */
  | { readonly mode: 'proxy'; readonly port: number; readonly host: string }
  | false;

export interface CertificateConfig {
  /** Names the certificate covers, normalised; the first is its primary name. */
  readonly names: readonly string[];
  /** The lineage: the folder of its files under files.directory (default: the primary name). */
  readonly lineageName: string;
  /** Absolute path of that folder. */
  readonly lineage: string;
  readonly webroot: string | undefined;
  readonly files: FileSettings;
  readonly deployHooks: readonly DeployHookConfig[];
}

export interface DaemonConfig {
  /** The file this was read from (absolute). */
  readonly path: string;
  readonly settings: CliSettings;
  /** True when the log level came from a flag, the environment or the file (the daemon defaults to info). */
  readonly logLevelSet: boolean;
  readonly http01: Http01Config;
  readonly notify: NotifyOptions | undefined;
  readonly certificates: readonly CertificateConfig[];
}

const DAEMON_KEYS = ['certificates', 'files', 'deployHooks', 'http01', 'notify'] as const;

export interface DaemonConfigSources {
  /** The config file; relative paths inside it are relative to its folder. */
  path: string;
  flags?: SettingsInput;
  env: NodeJS.ProcessEnv;
  cwd: string;
  /** Test seam for owner/group names. */
  accounts?: AccountDatabases;
}

/** Reads and validates the file; throws InvalidOptionError (ERR_INVALID_OPTION) naming the field and the file. */
export function loadDaemonConfig(sources: DaemonConfigSources): DaemonConfig {
  const path = resolve(sources.cwd, sources.path);
  return resolveDaemonConfig(readJsonConfig(path), { ...sources, path });
}

/** Validates parsed JSON into a frozen DaemonConfig (see loadDaemonConfig). */
export function resolveDaemonConfig(input: unknown, sources: DaemonConfigSources): DaemonConfig {
  const path = resolve(sources.cwd, sources.path);
  try {
    return resolveWithin(input, path, sources);
  } catch (error) {
    // Every message says which file: the daemon may be reloading one of several.
    if (error instanceof InvalidOptionError && !error.message.includes(path)) {
      throw new InvalidOptionError(error.option, `${error.message.replace(/^Invalid option "[^"]*": /, '')} (in ${path})`);
    }
    throw error;
  }
}

function resolveWithin(input: unknown, path: string, sources: DaemonConfigSources): DaemonConfig {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) throw new InvalidOptionError('--config', `${path} must hold a JSON object`);
  const file = input as Record<string, unknown>;
  const settingsInput: SettingsInput = {};
  for (const [key, value] of Object.entries(file)) {
    if (Object.hasOwn(SETTINGS, key)) (settingsInput as Record<string, unknown>)[key] = value;
    else if (!(DAEMON_KEYS as readonly string[]).includes(key)) {
      throw new InvalidOptionError(key, `is not a setting (known: ${[...DAEMON_KEYS, ...Object.keys(SETTINGS)].join(', ')})`);
    }
  }
  const fileDir = dirname(path);
  const flags = sources.flags ?? {};
  const settings = resolveCliSettings({ flags, env: sources.env, file: settingsInput, fileDir, cwd: sources.cwd });
  // --quiet sets the level too (error), as for every command.
  const logLevelSet = flags.logLevel !== undefined || Boolean(sources.env[SETTINGS.logLevel.env]) || settingsInput.logLevel !== undefined || settings.quiet;
  const inFile = (value: string): string => (isAbsolute(value) ? value : resolve(fileDir, value));

  const http01 = resolveHttp01(file.http01, settings, inFile);
  // The CLI's notify setting (flags, CERTKEEPER_NOTIFY_*, this file's "notify"), checked by the library's resolver.
  const notify = notifyOptionsFrom(settings.notify);

  const ids = {
    user: (value: unknown, option: string) => accountId(value, option, 'user', sources.accounts),
    group: (value: unknown, option: string) => accountId(value, option, 'group', sources.accounts),
  };
  const defaults = resolveFileSettings(file.files, 'files', undefined, inFile, ids);
  const defaultHooks = resolveHooks(file.deployHooks, 'deployHooks');

  if (!Array.isArray(file.certificates) || file.certificates.length === 0) {
    throw new InvalidOptionError('certificates', 'must be a non-empty array of { "names": [...] }');
  }
  const seenNames = new Map<string, number>();
  const seenLineages = new Map<string, number>();
  const certificates = file.certificates.map((entry: unknown, index): CertificateConfig => {
    const at = `certificates[${index}]`;
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) throw new InvalidOptionError(at, 'must be an object with "names"');
    const cert = entry as Record<string, unknown>;
    for (const key of Object.keys(cert)) {
      if (!['names', 'name', 'webroot', 'files', 'deployHooks'].includes(key)) throw new InvalidOptionError(`${at}.${key}`, 'is not a certificate setting (known: names, name, webroot, files, deployHooks)');
    }
    const names = resolveNames(cert.names, `${at}.names`);
    for (const name of names) {
      const other = seenNames.get(name);
      if (other !== undefined) throw new InvalidOptionError(`${at}.names`, `${name} is already in certificates[${other}]`);
      seenNames.set(name, index);
    }
    const lineageName = resolveLineageName(cert.name, `${at}.name`, names[0] as string);
    const otherLineage = seenLineages.get(lineageName);
    if (otherLineage !== undefined) throw new InvalidOptionError(`${at}.name`, `the files folder "${lineageName}" is already used by certificates[${otherLineage}]`);
    seenLineages.set(lineageName, index);
    const files = resolveFileSettings(cert.files, `${at}.files`, defaults, inFile, ids);
    if (files.directory === undefined) throw new InvalidOptionError('files.directory', 'is required: the folder the certificate files are written to (one subfolder per certificate)');
    let webroot: string | undefined;
    if (cert.webroot !== undefined) {
      if (typeof cert.webroot !== 'string' || cert.webroot === '') throw new InvalidOptionError(`${at}.webroot`, 'must be a folder path');
      if (http01 === false || http01.mode !== 'webroot') throw new InvalidOptionError(`${at}.webroot`, 'needs "http01": { "mode": "webroot" }');
      webroot = inFile(cert.webroot);
    } else if (http01 !== false && http01.mode === 'webroot') {
      webroot = http01.webroot;
      if (webroot === undefined && names.some((n) => !n.startsWith('*.'))) throw new InvalidOptionError(`${at}.webroot`, 'is required (or http01.webroot for every certificate)');
    }
    const hooks = cert.deployHooks === undefined ? defaultHooks : resolveHooks(cert.deployHooks, `${at}.deployHooks`);
    return Object.freeze({ names: Object.freeze(names), lineageName, lineage: join(files.directory, lineageName), webroot, files, deployHooks: hooks });
  });

  return Object.freeze({ path, settings, logLevelSet, http01, notify, certificates: Object.freeze(certificates) });
}

function resolveNames(value: unknown, option: string): string[] {
  if (!Array.isArray(value) || value.length === 0) throw new InvalidOptionError(option, 'must be a non-empty array of names');
  const names: string[] = [];
  for (const item of value) {
    try {
      const name = parseIdentifier(item as string).value;
      if (!names.includes(name)) names.push(name);
    } catch (error) {
      // The name's own message says what is wrong; no cause, or the CLI would print it twice.
      throw new InvalidOptionError(option, (error as Error).message);
    }
  }
  return names;
}

function resolveLineageName(value: unknown, option: string, primary: string): string {
  if (value === undefined) return safeKeyComponent(primary);
  if (typeof value !== 'string' || !/^[A-Za-z0-9_][A-Za-z0-9._-]*$/.test(value) || value.length > 200) {
    throw new InvalidOptionError(option, 'must be a folder name of letters, digits, ".", "_" and "-" (no "/")');
  }
  return value;
}

function resolveHttp01(value: unknown, settings: CliSettings, inFile: (p: string) => string): Http01Config {
  if (value === false) return false;
  if (value === undefined) return Object.freeze({ mode: 'listener', port: settings.httpPort, host: settings.httpHost });
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new InvalidOptionError('http01', 'must be { "mode": "webroot" | "listener" | "proxy", ... } or false');
  const { mode, webroot, port, host, ...rest } = value as Record<string, unknown>;
  const extra = Object.keys(rest)[0];
  if (extra !== undefined) throw new InvalidOptionError(`http01.${extra}`, 'is not an http01 setting (known: mode, webroot, port, host)');
  if (host !== undefined && typeof host !== 'string') throw new InvalidOptionError('http01.host', 'must be an address string');
  switch (mode) {
    case 'webroot':
      if (port !== undefined || host !== undefined) throw new InvalidOptionError('http01', 'port and host belong to the listener and proxy modes, not webroot');
      if (webroot !== undefined && (typeof webroot !== 'string' || webroot === '')) throw new InvalidOptionError('http01.webroot', 'must be a folder path');
      return Object.freeze({ mode, webroot: webroot === undefined ? undefined : inFile(webroot as string) });
    case 'listener':
    case 'proxy': {
      if (webroot !== undefined) throw new InvalidOptionError('http01.webroot', 'belongs to "mode": "webroot"');
      if (mode === 'proxy' && port === undefined) throw new InvalidOptionError('http01.port', 'is required for the proxy endpoint (the port your web server proxies /.well-known/acme-challenge/ to)');
      const resolvedPort = validPort(port, 'http01.port') ?? settings.httpPort;
      const resolvedHost = (host as string | undefined) ?? (mode === 'proxy' ? DEFAULT_CHALLENGE_PROXY_HOST : settings.httpHost);
      return Object.freeze({ mode, port: resolvedPort, host: resolvedHost });
    }
    default:
      throw new InvalidOptionError('http01.mode', 'must be "webroot", "listener" or "proxy"');
  }
}
