/**
 * Redaction of program output (DNS hooks today, deploy hooks later) before it
 * goes into an error, an event or a log: a hook that runs `curl -v` prints
 * its own Authorization header, and its stderr must not carry the token on.
 *
 * Two fences: the values the caller knows are secret (e.g. every value of a
 * hook's `env`), and shapes that look like credentials whatever their value
 * (credential headers, Bearer/Basic values, token=/password= pairs, URL
 * user-info, PEM private keys).
 */

export const REDACTED = '[redacted]';
/** Shorter values are not secrets worth the name, and would blank out ordinary words and numbers. */
export const MIN_SECRET_LENGTH = 4;
import { DEFAULT_TAIL_BYTES, DEFAULT_TAIL_LINES } from './defaults.js';
export { DEFAULT_TAIL_BYTES, DEFAULT_TAIL_LINES };

const PEM_PRIVATE_BLOCK = /-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY( BLOCK)?-----[\s\S]*?(?:-----END [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----|$)/g;
/** The end of a block whose start was cut off. */
const PEM_PRIVATE_TAIL = /^[\s\S]*?-----END [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----/;
const CREDENTIAL_HEADER = /\b(authorization|proxy-authorization|cookie|set-cookie|x-api-key|x-auth-token|x-auth-key|api-key|apikey|x-goog-api-key|private-token)(\s*:\s*)[^\r\n]*/gi;
const AUTH_SCHEME = /\b(bearer|basic|digest|token|apikey)(\s+)[A-Za-z0-9._~+/=-]{4,}/gi;
const KEY_VALUE = /\b([A-Za-z0-9_-]*(?:token|password|passwd|pwd|secret|api[_-]?key|apikey|access[_-]?key|credential)[A-Za-z0-9_-]*)(\s*[=:]\s*)("[^"]*"|'[^']*'|[^\s&;,"']+)/gi;
const JSON_SECRET = /("[A-Za-z0-9_-]*(?:token|password|passwd|secret|api[_-]?key|apikey|access[_-]?key|credential)[A-Za-z0-9_-]*"\s*:\s*)"(?:[^"\\]|\\.)*"/gi;
const URL_USERINFO = /\b([a-z][a-z0-9+.-]*:\/\/)[^\s/@:]+:[^\s/@]*@/gi;

export interface RedactOptions {
  /** Values to remove wherever they appear (shorter than MIN_SECRET_LENGTH are ignored). */
  secrets?: Iterable<string> | undefined;
}

/** A function removing the given secrets and every credential-shaped string from a text. */
export function createRedactor(options: RedactOptions = {}): (text: string) => string {
  const values = new Set<string>();
  for (const secret of options.secrets ?? []) {
    if (typeof secret !== 'string' || secret.length < MIN_SECRET_LENGTH) continue;
    values.add(secret);
    // The forms a program is likely to print it in as well.
    values.add(encodeURIComponent(secret));
    values.add(Buffer.from(secret).toString('base64').replace(/=+$/, ''));
  }
  // Longest first, so a secret containing another is removed whole.
  const ordered = [...values].filter((v) => v.length >= MIN_SECRET_LENGTH).sort((a, b) => b.length - a.length);
  return (text: string): string => {
    let out = text;
    for (const value of ordered) out = out.split(value).join(REDACTED);
    return out
      .replace(PEM_PRIVATE_BLOCK, '[private key redacted]')
      .replace(PEM_PRIVATE_TAIL, '[private key redacted]')
      .replace(CREDENTIAL_HEADER, (_m, name: string, sep: string) => `${name}${sep}${REDACTED}`)
      .replace(AUTH_SCHEME, (_m, scheme: string, sep: string) => `${scheme}${sep}${REDACTED}`)
      .replace(JSON_SECRET, (_m, key: string) => `${key}"${REDACTED}"`)
      .replace(KEY_VALUE, (m, key: string, sep: string, value: string) => (value === REDACTED || value.startsWith('[') ? m : `${key}${sep}${REDACTED}`))
      .replace(URL_USERINFO, (_m, scheme: string) => `${scheme}${REDACTED}@`);
  };
}

/** One-shot form of createRedactor. */
export function redact(text: string, options?: RedactOptions): string {
  return createRedactor(options)(text);
}

export interface TailOptions {
  maxLines?: number | undefined;
  maxBytes?: number | undefined;
}

/**
 * The end of a program's output, at most `maxLines` lines and `maxBytes`
 * UTF-8 bytes, with a leading `…` when something was left out. Redact first:
 * a cut inside a secret would leave a piece no pattern recognises.
 */
export function tail(text: string, options: TailOptions = {}): string {
  const maxLines = options.maxLines ?? DEFAULT_TAIL_LINES;
  const maxBytes = options.maxBytes ?? DEFAULT_TAIL_BYTES;
  const trimmed = text.trim();
  let lines = trimmed.split(/\r?\n/);
  let cut = false;
  if (lines.length > maxLines) {
    lines = lines.slice(-maxLines);
    cut = true;
  }
  let out = lines.join('\n');
  if (Buffer.byteLength(out) > maxBytes) {
    const bytes = Buffer.from(out);
    // Drop whole UTF-8 characters only: skip continuation bytes at the cut.
    let start = bytes.length - maxBytes;
    while (start < bytes.length && ((bytes[start] as number) & 0xc0) === 0x80) start++;
    out = bytes.subarray(start).toString('utf8');
    cut = true;
  }
  return cut ? `…${out}` : out;
}
