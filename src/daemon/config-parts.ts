/** The `files` and `deployHooks` parts of the daemon's config file (see config.ts), also used by `renew --deploy-hook`. */
import { InvalidOptionError } from '../errors.js';
import { durationMs } from '../validate.js';
import {
  DEFAULT_CERT_FILE_MODE,
  DEFAULT_DEPLOY_HOOK_RETRIES,
  DEFAULT_DEPLOY_HOOK_RETRY_DELAY_MS,
  DEFAULT_DEPLOY_HOOK_TIMEOUT_MS,
  DEFAULT_KEY_FILE_MODE,
} from '../defaults.js';

export interface FileSettings {
  /** Folder holding one subfolder (lineage) per certificate; required somewhere (top level or per certificate). */
  readonly directory: string | undefined;
  /** uid to chown the files to; undefined: the daemon's own. */
  readonly owner: number | undefined;
  readonly group: number | undefined;
  /** cert.pem, chain.pem, fullchain.pem. */
  readonly mode: number;
  /** privkey.pem and combined.pem. */
  readonly keyMode: number;
}

export interface DeployHookConfig {
  /** Program and arguments, run without a shell. */
  readonly command: readonly string[];
  readonly timeoutMs: number;
  readonly retries: number;
  readonly retryDelayMs: number;
  /** Extra environment; its values are treated as secrets (redacted from the captured output). */
  readonly env: Readonly<Record<string, string>>;
}

interface IdResolvers {
  user(value: unknown, option: string): number | undefined;
  group(value: unknown, option: string): number | undefined;
}

const FILE_KEYS = ['directory', 'owner', 'group', 'mode', 'keyMode'];

/** Per-certificate settings fall back, field by field, to the top-level `files`. */
export function resolveFileSettings(value: unknown, option: string, defaults: FileSettings | undefined, inFile: (path: string) => string, ids: IdResolvers): FileSettings {
  if (value !== undefined && (typeof value !== 'object' || value === null || Array.isArray(value))) {
    throw new InvalidOptionError(option, `must be an object with any of ${FILE_KEYS.join(', ')}`);
  }
  const input = (value ?? {}) as Record<string, unknown>;
  for (const key of Object.keys(input)) {
    if (!FILE_KEYS.includes(key)) throw new InvalidOptionError(`${option}.${key}`, `is not a files setting (known: ${FILE_KEYS.join(', ')})`);
  }
  let directory = defaults?.directory;
  if (input.directory !== undefined) {
    if (typeof input.directory !== 'string' || input.directory === '') throw new InvalidOptionError(`${option}.directory`, 'must be a folder path');
    directory = inFile(input.directory);
  }
  return Object.freeze({
    directory,
    owner: ids.user(input.owner, `${option}.owner`) ?? defaults?.owner,
    group: ids.group(input.group, `${option}.group`) ?? defaults?.group,
    mode: fileMode(input.mode, `${option}.mode`) ?? defaults?.mode ?? DEFAULT_CERT_FILE_MODE,
    keyMode: fileMode(input.keyMode, `${option}.keyMode`) ?? defaults?.keyMode ?? DEFAULT_KEY_FILE_MODE,
  });
}

/** An octal string ("0640", "640") or an integer; JSON has no octal literal, so 416 and "0640" are the same. */
export function fileMode(value: unknown, option: string): number | undefined {
  if (value === undefined) return undefined;
  let mode: number | undefined;
  if (typeof value === 'string' && /^0?[0-7]{3}$/.test(value)) mode = Number.parseInt(value, 8);
  else if (typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= 0o777) mode = value;
  if (mode === undefined) throw new InvalidOptionError(option, 'must be a file mode as an octal string, e.g. "0640"');
  if ((mode & 0o600) !== 0o600) throw new InvalidOptionError(option, 'must let the owner read and write (e.g. "0600" or "0640")');
  return mode;
}

const HOOK_KEYS = ['command', 'timeoutMs', 'retries', 'retryDelayMs', 'env'];

/** `[["systemctl", "reload", "nginx"], { "command": [...], "timeoutMs": 30000 }]`: a bare array is a command. */
export function resolveHooks(value: unknown, option: string): readonly DeployHookConfig[] {
  if (value === undefined) return Object.freeze([]);
  if (!Array.isArray(value)) throw new InvalidOptionError(option, 'must be an array of hooks: ["program", "arg", ...] or { "command": [...] }');
  return Object.freeze(value.map((hook: unknown, index) => resolveHook(Array.isArray(hook) ? { command: hook } : hook, `${option}[${index}]`)));
}

export function resolveHook(value: unknown, option: string): DeployHookConfig {
  if (typeof value !== 'object' || value === null) throw new InvalidOptionError(option, 'must be ["program", "arg", ...] or { "command": [...] }');
  const hook = value as Record<string, unknown>;
  for (const key of Object.keys(hook)) {
    if (!HOOK_KEYS.includes(key)) throw new InvalidOptionError(`${option}.${key}`, `is not a hook setting (known: ${HOOK_KEYS.join(', ')})`);
  }
  const { command } = hook;
  if (!Array.isArray(command) || command.length === 0 || command.some((a) => typeof a !== 'string') || command[0] === '') {
    throw new InvalidOptionError(`${option}.command`, 'must be a non-empty array of strings: the program, then its arguments (no shell)');
  }
  const env = hook.env ?? {};
  if (typeof env !== 'object' || env === null || Array.isArray(env) || Object.values(env).some((v) => typeof v !== 'string')) {
    throw new InvalidOptionError(`${option}.env`, 'must map names to strings');
  }
  const retries = hook.retries ?? DEFAULT_DEPLOY_HOOK_RETRIES;
  if (typeof retries !== 'number' || !Number.isInteger(retries) || retries < 0) throw new InvalidOptionError(`${option}.retries`, 'must be an integer >= 0');
  return Object.freeze({
    command: Object.freeze([...(command as string[])]),
    timeoutMs: durationMs(hook.timeoutMs, `${option}.timeoutMs`) ?? DEFAULT_DEPLOY_HOOK_TIMEOUT_MS,
    retries,
    retryDelayMs: durationMs(hook.retryDelayMs, `${option}.retryDelayMs`, true) ?? DEFAULT_DEPLOY_HOOK_RETRY_DELAY_MS,
    env: Object.freeze({ ...(env as Record<string, string>) }),
  });
}
