/**
 * How the CLI words an error: one line `certkeeper: <message> [<code>]` and,
 * when the CLI knows one, a remedy naming its own flags. The library's messages
 * speak of options (`agreeToTerms: true`, option "ca"); a CLI user needs flags.
 */
import { SETTINGS, type CliSettings } from './settings.js';

/** Library option names whose CLI flag has another spelling than the SETTINGS key. */
const LIBRARY_OPTION_FLAGS: Readonly<Record<string, string>> = {
  caCertificates: '--ca-root',
  'http01.port': '--http-port',
  'http01.host': '--http-host',
  'tlsAlpn01.port': '--tls-alpn-port',
  'tlsAlpn01.host': '--tls-alpn-host',
  'notify.webhook.url': '--notify-webhook',
  'notify.exec.command': '--notify-exec',
  'notify.events': '--notify-events',
};

/** The flag of a library option name, when the CLI has one. */
export function flagForOption(option: string): string | undefined {
  if (Object.hasOwn(SETTINGS, option)) {
    const flag = SETTINGS[option as keyof CliSettings].flag;
    return flag.startsWith('--') ? flag : undefined;
  }
  return LIBRARY_OPTION_FLAGS[option];
}

export interface CliErrorText {
  message: string;
  code: string | undefined;
  remedy: string | undefined;
}

/** Works on an Error or on its pino-serialized form (a plain object with the same fields). */
export function describeError(error: unknown): CliErrorText {
  const fields = (typeof error === 'object' && error !== null ? error : {}) as Record<string, unknown>;
  const rawCode = fields.code;
  const code = typeof rawCode === 'string' && rawCode.startsWith('ERR_') ? rawCode : undefined;
  let message = error instanceof Error ? error.message : typeof fields.message === 'string' ? fields.message : String(error);
  let remedy: string | undefined;
  if (code === 'ERR_TERMS_NOT_AGREED') {
    const terms = typeof fields.termsOfServiceUrl === 'string' ? fields.termsOfServiceUrl : undefined;
    const at = typeof fields.directoryUrl === 'string' ? ` at ${fields.directoryUrl}` : '';
    message = `The CA${at} requires accepting its terms of service${terms ? ` (${terms})` : ''}`;
    remedy = 'read them, then run again with --agree-to-terms (or CERTKEEPER_AGREE_TO_TERMS=1)';
  } else if (code === 'ERR_INVALID_OPTION' && typeof fields.option === 'string') {
    const flag = flagForOption(fields.option);
    if (flag !== undefined) {
      message = message.replace(`Invalid option "${fields.option}"`, `Invalid ${flag}`);
      remedy = `check the value of ${flag} (or its CERTKEEPER_* variable or config file entry)`;
    }
  } else if (code === 'ERR_CHALLENGE_FAILED' && typeof fields.address === 'string') {
    // A challenge listener could not bind (ChallengeListenerError).
    remedy = 'free the port or pick another with --http-port / --tls-alpn-port (ports below 1024 need privileges)';
  }
  return { message, code, remedy };
}

/** `message (CODE)`: the inline form used inside progress lines. */
export function errorText(error: unknown): string {
  const { message, code } = describeError(error);
  return code !== undefined ? `${message} (${code})` : message;
}

/** The lines printed for an error that ends the command: `certkeeper: message [CODE]` and its remedy. */
export function errorLines(error: unknown, prefix = ''): string {
  const { message, code, remedy } = describeError(error);
  const head = `certkeeper: ${prefix}${oneLine(message)}${code !== undefined ? ` [${code}]` : ''}\n`;
  return remedy !== undefined ? `${head}  hint: ${remedy}\n` : head;
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ');
}
