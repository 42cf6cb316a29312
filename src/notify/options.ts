/**
 * The `notify` option: where notifications go (a signed webhook, an exec
 * hook), which ones, and when a certificate counts as expiring soon. Resolved
 * once into a frozen config by resolveConfig().
 */
import { InvalidOptionError } from '../errors.js';
import { durationMs, nonNegativeInteger } from '../validate.js';
import { DEFAULT_NOTIFY_TIMEOUT_MS, DEFAULT_NOTIFY_RETRIES, DEFAULT_NOTIFY_RETRY_DELAY_MS, DEFAULT_NOTIFY_EXPIRING_RATIO } from '../defaults.js';
export { DEFAULT_NOTIFY_TIMEOUT_MS, DEFAULT_NOTIFY_RETRIES, DEFAULT_NOTIFY_RETRY_DELAY_MS, DEFAULT_NOTIFY_EXPIRING_RATIO };

/** HMAC keys shorter than this are refused (a guessable key signs nothing). */
export const MIN_WEBHOOK_SECRET_LENGTH = 16;

export const NOTIFICATION_TYPES = ['renewal_failing', 'cert_expiring', 'cert_renewed', 'cert_replaced_early', 'cert_revoked'] as const;
export type NotificationType = (typeof NOTIFICATION_TYPES)[number];

export interface WebhookOptions {
  /** http: or https: URL receiving a JSON POST. */
  url: string;
  /** HMAC-SHA256 key signing `<timestamp>.<body>`; never logged. */
  secret: string;
  timeoutMs?: number;
  retries?: number;
  retryDelayMs?: number;
}

export interface ExecHookOptions {
  /** Program and arguments (no shell): the event JSON is written to its stdin. */
  command: readonly string[];
  timeoutMs?: number;
  retries?: number;
  retryDelayMs?: number;
}

export interface NotifyOptions {
  webhook?: WebhookOptions | false;
  exec?: ExecHookOptions | false;
  /** Which notifications to send (default: all). */
  events?: readonly NotificationType[];
  /** Fraction of the lifetime left at which a certificate is "expiring soon" (default 1/5). */
  expiringRatio?: number;
  /** Once per fleet: a marker in the shared storage, written under a lock, says a notification was sent (default true). */
  shareThroughStorage?: boolean;
}

export interface ResolvedSink {
  readonly timeoutMs: number;
  readonly retries: number;
  readonly retryDelayMs: number;
}

export interface ResolvedNotify {
  readonly webhook: (ResolvedSink & { readonly url: string; readonly secret: string }) | false;
  readonly exec: (ResolvedSink & { readonly command: readonly string[] }) | false;
  readonly events: ReadonlySet<NotificationType>;
  readonly expiringRatio: number;
  readonly shareThroughStorage: boolean;
}

export function resolveNotify(options: NotifyOptions | false | undefined): ResolvedNotify | false {
  if (options === undefined || options === false) return false;
  if (typeof options !== 'object' || options === null) throw new InvalidOptionError('notify', 'must be an object or false');
  const webhook = options.webhook === undefined || options.webhook === false ? false : resolveWebhook(options.webhook);
  const exec = options.exec === undefined || options.exec === false ? false : resolveExec(options.exec);
  if (!webhook && !exec) throw new InvalidOptionError('notify', 'needs a webhook or an exec hook (or notify: false)');
  let events: ReadonlySet<NotificationType> = new Set(NOTIFICATION_TYPES);
  if (options.events !== undefined) {
    if (!Array.isArray(options.events) || options.events.some((e) => !(NOTIFICATION_TYPES as readonly string[]).includes(e as string))) {
      throw new InvalidOptionError('notify.events', `must be an array of ${NOTIFICATION_TYPES.join(', ')}`);
    }
    events = new Set(options.events);
  }
  const expiringRatio = options.expiringRatio ?? DEFAULT_NOTIFY_EXPIRING_RATIO;
  if (typeof expiringRatio !== 'number' || !(expiringRatio > 0 && expiringRatio < 1)) {
    throw new InvalidOptionError('notify.expiringRatio', 'must be a number between 0 and 1 (exclusive)');
  }
  if (options.shareThroughStorage !== undefined && typeof options.shareThroughStorage !== 'boolean') {
    throw new InvalidOptionError('notify.shareThroughStorage', 'must be a boolean');
  }
  return Object.freeze({ webhook, exec, events, expiringRatio, shareThroughStorage: options.shareThroughStorage ?? true });
}

function resolveSink(options: { timeoutMs?: number; retries?: number; retryDelayMs?: number }, path: string): ResolvedSink {
  return {
    timeoutMs: durationMs(options.timeoutMs, `${path}.timeoutMs`, false, true) ?? DEFAULT_NOTIFY_TIMEOUT_MS,
    retries: nonNegativeInteger(options.retries, `${path}.retries`) ?? DEFAULT_NOTIFY_RETRIES,
    retryDelayMs: durationMs(options.retryDelayMs, `${path}.retryDelayMs`, true, true) ?? DEFAULT_NOTIFY_RETRY_DELAY_MS,
  };
}

function resolveWebhook(options: WebhookOptions): ResolvedNotify['webhook'] {
  if (typeof options !== 'object' || options === null) throw new InvalidOptionError('notify.webhook', 'must be an object or false');
  let url: URL;
  try {
    url = new URL(options.url);
  } catch {
    throw new InvalidOptionError('notify.webhook.url', 'must be an http: or https: URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new InvalidOptionError('notify.webhook.url', 'must be an http: or https: URL');
  if (url.username || url.password) throw new InvalidOptionError('notify.webhook.url', 'must not carry credentials (the body is signed with `secret`)');
  // The message never shows the secret, only what is wrong with it.
  if (typeof options.secret !== 'string' || options.secret.length < MIN_WEBHOOK_SECRET_LENGTH) {
    throw new InvalidOptionError('notify.webhook.secret', `must be a string of at least ${MIN_WEBHOOK_SECRET_LENGTH} characters`);
  }
  return Object.freeze({ url: url.href, secret: options.secret, ...resolveSink(options, 'notify.webhook') });
}

function resolveExec(options: ExecHookOptions): ResolvedNotify['exec'] {
  if (typeof options !== 'object' || options === null) throw new InvalidOptionError('notify.exec', 'must be an object or false');
  const { command } = options;
  if (!Array.isArray(command) || command.length === 0 || command.some((a) => typeof a !== 'string') || command[0] === '') {
    throw new InvalidOptionError('notify.exec.command', 'must be a non-empty array of strings: the program, then its arguments (no shell)');
  }
  return Object.freeze({ command: Object.freeze([...command]), ...resolveSink(options, 'notify.exec') });
}
