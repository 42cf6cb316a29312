/**
 * The CLI's `notify` setting: the library's `notify` option for one-shot
 * commands (a cron `certkeeper renew`) and the daemon, field by field from
 * flags, then CERTKEEPER_NOTIFY_* variables, then the config file's `notify`
 * object. The webhook secret never comes from argv (other local users see
 * it): a file (--notify-secret-file), CERTKEEPER_NOTIFY_SECRET, or the
 * config file. It is kept as a reader, not a string, so a printed or logged
 * settings object holds no secret; the file is read when the command needs it.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { InvalidOptionError } from '../errors.js';
import { NOTIFICATION_TYPES, resolveNotify, type NotificationType, type NotifyOptions } from '../notify/options.js';
import { splitCommand } from './split-command.js';

/** The flags, as commander gives them (strings). */
export interface NotifyFlags {
  webhook?: string;
  secretFile?: string;
  exec?: string;
  events?: string;
}

export const NOTIFY_ENV = {
  webhook: 'CERTKEEPER_NOTIFY_WEBHOOK',
  secret: 'CERTKEEPER_NOTIFY_SECRET',
  secretFile: 'CERTKEEPER_NOTIFY_SECRET_FILE',
  exec: 'CERTKEEPER_NOTIFY_EXEC',
  events: 'CERTKEEPER_NOTIFY_EVENTS',
} as const;

export const NOTIFY_FLAGS = {
  webhook: '--notify-webhook',
  secretFile: '--notify-secret-file',
  exec: '--notify-exec',
  events: '--notify-events',
} as const;

/** commander's option names of the notify flags (camel case of NOTIFY_FLAGS). */
const OPTION_NAMES: Record<keyof NotifyFlags, string> = { webhook: 'notifyWebhook', secretFile: 'notifySecretFile', exec: 'notifyExec', events: 'notifyEvents' };

type Sink = { timeoutMs?: number; retries?: number; retryDelayMs?: number };

export interface CliNotifySettings {
  readonly webhook: (Sink & { readonly url: string; readonly secretFrom: string; readonly secret: () => string }) | undefined;
  readonly exec: (Sink & { readonly command: readonly string[] }) | undefined;
  readonly events: readonly NotificationType[] | undefined;
  readonly expiringRatio: number | undefined;
  readonly shareThroughStorage: boolean | undefined;
}

/** The notify flags among a command's options, or undefined when none was given. */
export function notifyFlagsFrom(opts: Record<string, unknown>): NotifyFlags | undefined {
  const flags: NotifyFlags = {};
  for (const [key, name] of Object.entries(OPTION_NAMES) as [keyof NotifyFlags, string][]) {
    if (typeof opts[name] === 'string') flags[key] = opts[name];
  }
  return Object.keys(flags).length > 0 ? flags : undefined;
}

export interface NotifySources {
  flags: unknown;
  env: NodeJS.ProcessEnv;
  file: unknown;
  fileDir: string | undefined;
  cwd: string;
}

/** Each field: the flag, else its variable, else the file's; undefined when no source configures a sink. */
export function resolveNotifySetting(sources: NotifySources): CliNotifySettings | undefined {
  const flags = (sources.flags ?? {}) as NotifyFlags;
  const env = (name: string): string | undefined => (sources.env[name] ? sources.env[name] : undefined);
  const file = fileObject(sources.file);
  const anyFlagOrEnv = Object.keys(flags).length > 0 || Object.values(NOTIFY_ENV).some((name) => env(name) !== undefined);
  if (file === false && !anyFlagOrEnv) return undefined;
  const fileWebhook = sinkObject(file ? file.webhook : undefined, 'notify.webhook');
  const fileExec = sinkObject(file ? file.exec : undefined, 'notify.exec');
  const fileDir = sources.fileDir ?? sources.cwd;

  const url = flags.webhook ?? env(NOTIFY_ENV.webhook) ?? optionalString(fileWebhook?.url, 'config file "notify.webhook.url"');
  let webhook: CliNotifySettings['webhook'];
  if (url !== undefined) {
    const secret = secretReader(flags, env, fileWebhook, sources.cwd, fileDir);
    webhook = Object.freeze({ ...sinkFields(fileWebhook), url, ...secret });
  }

  let command: string[] | undefined;
  if (flags.exec !== undefined) command = splitCommand(flags.exec, NOTIFY_FLAGS.exec);
  else if (env(NOTIFY_ENV.exec) !== undefined) command = splitCommand(env(NOTIFY_ENV.exec) as string, NOTIFY_ENV.exec);
  else if (fileExec?.command !== undefined) command = fileExec.command as string[];
  const exec = command !== undefined ? Object.freeze({ ...sinkFields(fileExec), command: Object.freeze([...command]) }) : undefined;
  if (webhook === undefined && exec === undefined) {
    if (file) throw new InvalidOptionError('notify', 'needs a webhook (--notify-webhook) or an exec hook (--notify-exec), or notify: false');
    // A secret or a list of events without anywhere to send them is a mistake, not "no notifications".
    throw new InvalidOptionError(NOTIFY_FLAGS.webhook, `is required with ${NOTIFY_FLAGS.secretFile}, ${NOTIFY_FLAGS.events} or their CERTKEEPER_NOTIFY_* variables (or ${NOTIFY_FLAGS.exec})`);
  }

  const eventsText = flags.events ?? env(NOTIFY_ENV.events);
  const eventsFrom = flags.events !== undefined ? NOTIFY_FLAGS.events : NOTIFY_ENV.events;
  const events = eventsText !== undefined ? eventsText.split(',').map((e) => e.trim()).filter((e) => e !== '') : file ? file.events : undefined;
  if (events !== undefined && (!Array.isArray(events) || events.some((e) => !(NOTIFICATION_TYPES as readonly unknown[]).includes(e)))) {
    throw new InvalidOptionError(eventsText !== undefined ? eventsFrom : 'notify.events', `must list ${NOTIFICATION_TYPES.join(', ')}`);
  }
  const settings: CliNotifySettings = Object.freeze({
    webhook,
    exec,
    events: events === undefined ? undefined : Object.freeze([...(events as NotificationType[])]),
    expiringRatio: file ? (file.expiringRatio as number | undefined) : undefined,
    shareThroughStorage: file ? (file.shareThroughStorage as boolean | undefined) : undefined,
  });
  // Everything but the secret is checked now, by the library's own resolver (the secret when it is read).
  resolveNotify(notifyOptions(settings, () => 'x'.repeat(64)));
  return settings;
}

/** The library's `notify` option; reads the secret (its file) now. */
export function notifyOptionsFrom(settings: CliNotifySettings | undefined): NotifyOptions | undefined {
  if (settings === undefined) return undefined;
  const options = notifyOptions(settings, settings.webhook?.secret);
  try {
    resolveNotify(options);
  } catch (error) {
    // The library names its option; the user set a flag, a variable or a file.
    if (error instanceof InvalidOptionError && error.option === 'notify.webhook.secret' && settings.webhook) {
      throw new InvalidOptionError(settings.webhook.secretFrom, error.message.replace(/^Invalid option "[^"]*": /, ''), { cause: error });
    }
    throw error;
  }
  return options;
}

function notifyOptions(settings: CliNotifySettings, secret: (() => string) | undefined): NotifyOptions {
  const { webhook, exec } = settings;
  return {
    ...(webhook ? { webhook: { ...sinkFields(webhook), url: webhook.url, secret: secret ? secret() : '' } } : {}),
    ...(exec ? { exec: { ...sinkFields(exec), command: exec.command } } : {}),
    ...(settings.events !== undefined ? { events: settings.events } : {}),
    ...(settings.expiringRatio !== undefined ? { expiringRatio: settings.expiringRatio } : {}),
    ...(settings.shareThroughStorage !== undefined ? { shareThroughStorage: settings.shareThroughStorage } : {}),
  };
}

type SecretSource = { secretFrom: string; secret: () => string };

/** The highest-precedence source of the secret: --notify-secret-file, then the variables, then the file (secret or secretFile). */
function secretReader(flags: NotifyFlags, env: (name: string) => string | undefined, file: Record<string, unknown> | undefined, cwd: string, fileDir: string): SecretSource {
  if (flags.secretFile !== undefined) return fromFile(resolve(cwd, flags.secretFile), NOTIFY_FLAGS.secretFile);
  const [envSecret, envFile] = [env(NOTIFY_ENV.secret), env(NOTIFY_ENV.secretFile)];
  if (envSecret !== undefined && envFile !== undefined) throw new InvalidOptionError(NOTIFY_ENV.secret, `give either ${NOTIFY_ENV.secret} or ${NOTIFY_ENV.secretFile}, not both`);
  if (envSecret !== undefined) return { secretFrom: NOTIFY_ENV.secret, secret: () => envSecret };
  if (envFile !== undefined) return fromFile(resolve(cwd, envFile), NOTIFY_ENV.secretFile);
  if (file?.secret !== undefined && file.secretFile !== undefined) throw new InvalidOptionError('notify.webhook.secret', 'give either secret or secretFile, not both');
  if (typeof file?.secret === 'string') {
    const value = file.secret;
    return { secretFrom: 'notify.webhook.secret', secret: () => value };
  }
  if (file?.secretFile !== undefined) return fromFile(resolve(fileDir, nonEmpty(file.secretFile, 'notify.webhook.secretFile')), 'notify.webhook.secretFile');
  throw new InvalidOptionError(NOTIFY_FLAGS.secretFile, `is required with a webhook: the HMAC key's file (or ${NOTIFY_ENV.secret}, or webhook.secretFile / secret in the config file); never the key itself on the command line`);
}

function fromFile(path: string, from: string): SecretSource {
  return {
    secretFrom: from,
    secret: () => {
      let text: string;
      try {
        text = readFileSync(path, 'utf8');
      } catch (error) {
        // The path, never the content.
        throw new InvalidOptionError(from, `cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, { cause: error });
      }
      return (text.split(/\r?\n/)[0] ?? '').trim();
    },
  };
}

function fileObject(value: unknown): Record<string, unknown> | false {
  if (value === undefined || value === false) return false;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new InvalidOptionError('notify', 'must be an object or false');
  return value as Record<string, unknown>;
}

function sinkObject(value: unknown, option: string): Record<string, unknown> | undefined {
  if (value === undefined || value === false) return undefined;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new InvalidOptionError(option, 'must be an object or false');
  return value as Record<string, unknown>;
}

function sinkFields(value: Record<string, unknown> | Sink | undefined): Sink {
  const v = (value ?? {}) as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const key of ['timeoutMs', 'retries', 'retryDelayMs']) if (v[key] !== undefined) out[key] = v[key];
  return out as Sink;
}

function optionalString(value: unknown, from: string): string | undefined {
  return value === undefined ? undefined : nonEmpty(value, from);
}

function nonEmpty(value: unknown, from: string): string {
  if (typeof value !== 'string' || value === '') throw new InvalidOptionError(from, 'must be a non-empty string');
  return value;
}
