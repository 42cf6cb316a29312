import { isIP } from 'node:net';
import { domainToASCII, domainToUnicode } from 'node:url';
import { InvalidNameError } from './errors.js';

export const MAX_NAME_LENGTH = 253;
export const MAX_LABEL_LENGTH = 63;

export interface Identifier {
  type: 'dns' | 'ip';
  /** Normalised value: lowercase A-label DNS name without trailing dot, or canonical IP text. */
  value: string;
  /** True for `*.example.com`. */
  wildcard: boolean;
}

const LABEL = /^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$/;
/** A last label that makes WHATWG host parsing read the whole name as IPv4 ("ends in a number"): decimal, or 0x hex. */
const IPV4_NUMBER = /^(?:\d+|0x[0-9a-f]*)$/;
/** IDNA2008 approximation for a U-label: letters, combining marks and digits (no symbols, punctuation or emoji), inner hyphens. */
const U_LABEL = /^[\p{L}\p{Nd}](?:[\p{L}\p{M}\p{Nd}-]*[\p{L}\p{M}\p{Nd}])?$/u;
/**
 * The common case in one test: lowercase LDH labels of at most 63, no `xn--` label, a last label that starts with
 * a letter (so neither an IP address nor read as one). Every check below passes such a name unchanged, URL host
 * parsing included, so it is its own normalised value (a million names at start-up: no split, no domainToASCII).
 */
const PLAIN_NAME = /^(?:(?!xn--)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*(?!xn--)[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/**
 * Normalises and validates a certificate identifier or SNI value before it
 * reaches a CA, storage or the context cache. Throws InvalidNameError.
 *
 * Lowercases, strips one trailing dot, converts Unicode to punycode (IDNA via
 * WHATWG URL rules), checks label and name lengths, allows `*` only as the
 * whole leftmost label, and recognises IPv4/IPv6 addresses.
 */
export function parseIdentifier(input: unknown): Identifier {
  if (typeof input !== 'string') {
    throw new InvalidNameError(String(input), 'must be a string');
  }
  if (input.length <= MAX_NAME_LENGTH && PLAIN_NAME.test(input)) return { type: 'dns', value: input, wildcard: false };
  if (input.length === 0) throw new InvalidNameError(input, 'is empty');
  // Longest legitimate input: a 253-octet name written in Unicode may be
  // shorter than its punycode, never dramatically longer.
  if (input.length > 1024) throw new InvalidNameError(input, 'is too long');
  if (/[\u0000-\u0020\u007f]/.test(input)) throw new InvalidNameError(input, 'contains whitespace or control characters');

  const bracketless = input.startsWith('[') && input.endsWith(']') ? input.slice(1, -1) : input;
  const ipVersion = isIP(bracketless);
  if (ipVersion !== 0) {
    return { type: 'ip', value: canonicalIp(bracketless, ipVersion), wildcard: false };
  }

  let name = input.endsWith('.') ? input.slice(0, -1) : input;
  if (name.length === 0) throw new InvalidNameError(input, 'is empty');
  let wildcard = false;
  if (name.startsWith('*.')) {
    wildcard = true;
    name = name.slice(2);
  }
  if (name.includes('*')) throw new InvalidNameError(input, 'a wildcard is allowed only as the whole leftmost label');
  if (/[/\\%@:?#[\]]/.test(name)) throw new InvalidNameError(input, 'contains characters not allowed in a host name');
  if (name.split('.').some((l) => l.length === 0)) throw new InvalidNameError(input, 'has an empty label');

  const ascii = /^[\x21-\x7e]*$/.test(name) ? name.toLowerCase() : domainToASCII(name);
  if (!ascii) throw new InvalidNameError(input, 'is not a valid internationalised domain name');

  const labels = ascii.split('.');
  // Browsers and every WHATWG URL parser read `0x7f000001`, `127.1` or `a.0x10` as an IPv4 address (another host).
  if (IPV4_NUMBER.test(labels[labels.length - 1] ?? '')) {
    throw new InvalidNameError(input, 'ends in a numeric label, so URL parsers read it as an IPv4 address (write IP addresses in canonical dotted form)');
  }
  for (const label of labels) {
    if (label.length === 0) throw new InvalidNameError(input, 'has an empty label');
    if (label.length > MAX_LABEL_LENGTH) throw new InvalidNameError(input, `has a label longer than ${MAX_LABEL_LENGTH} characters`);
    if (!LABEL.test(label)) throw new InvalidNameError(input, `label "${label}" must be letters, digits and inner hyphens`);
    if (label.startsWith('xn--')) checkALabel(input, label);
  }
  const value = wildcard ? `*.${ascii}` : ascii;
  if (value.length > MAX_NAME_LENGTH) throw new InvalidNameError(input, `is longer than ${MAX_NAME_LENGTH} characters`);
  if (wildcard && labels.length < 2) throw new InvalidNameError(input, 'a wildcard needs at least two labels below it');
  // Last line of defence: a name is accepted only when URL host parsing maps it to itself.
  if (domainToASCII(ascii) !== ascii) throw new InvalidNameError(input, 'is read as a different host by URL parsers');
  return { type: 'dns', value, wildcard };
}

/** Returns the normalised name string (see parseIdentifier). */
export function normalizeName(input: unknown): string {
  return parseIdentifier(input).value;
}

/**
 * Normalises an SNI value from a ClientHello. Wildcards and IP addresses are
 * not valid server names in SNI (RFC 6066), so they are rejected here.
 */
export function normalizeServerName(input: unknown): string {
  // SNI carries A-labels only (RFC 6066 3). Node hands raw bytes over as latin1,
  // so a UTF-8 name arrives garbled; converting that to punycode would name a stranger.
  if (typeof input === 'string' && /[^\x00-\x7f]/.test(input)) {
    throw new InvalidNameError(input, 'an SNI server name must be ASCII (internationalised names are sent as xn-- A-labels)');
  }
  const id = parseIdentifier(input);
  if (id.type === 'ip') throw new InvalidNameError(String(input), 'an IP address is not a valid SNI server name');
  if (id.wildcard) throw new InvalidNameError(String(input), 'a wildcard is not a valid SNI server name');
  return id.value;
}

/** The wildcard name that would cover `name` (`a.example.com` -> `*.example.com`), or undefined. */
export function wildcardFor(name: string): string | undefined {
  const dot = name.indexOf('.');
  if (dot <= 0) return undefined;
  const rest = name.slice(dot + 1);
  if (!rest.includes('.')) return undefined;
  return `*.${rest}`;
}

/**
 * An A-label must be the punycode of a valid U-label: it decodes, the U-label is not plain ASCII, and encoding
 * the U-label gives this exact label back (so no two spellings name one host).
 */
function checkALabel(input: string, label: string): void {
  const unicode = domainToUnicode(label);
  const valid = unicode !== '' && unicode !== label && /[^\x00-\x7f]/.test(unicode) && U_LABEL.test(unicode) && domainToASCII(unicode) === label;
  if (!valid) throw new InvalidNameError(input, `label "${label}" is not a valid A-label (punycode of an internationalised label)`);
}

function canonicalIp(text: string, version: number): string {
  if (version === 4) return text;
  // Canonical IPv6 text (RFC 5952) via the URL parser.
  return new URL(`http://[${text}]/`).hostname.slice(1, -1);
}
