/**
 * One validator per kind of option, with one message per kind, used by
 * resolveConfig and by every component that takes options of its own, so an
 * option accepted in one place is never rejected in another.
 */
import { InvalidOptionError } from './errors.js';

export function optionalString(value: unknown, option: string): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw new InvalidOptionError(option, 'must be a string');
  return value;
}

export function optionalBoolean(value: unknown, option: string): boolean | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'boolean') throw new InvalidOptionError(option, 'must be true or false');
  return value;
}

export function positiveInteger(value: unknown, option: string): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0) throw new InvalidOptionError(option, 'must be a positive integer');
  return value;
}

export function nonNegativeInteger(value: unknown, option: string): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) throw new InvalidOptionError(option, 'must be an integer >= 0');
  return value;
}

/** A TCP/UDP port; `min` is 1 where 0 ("any free port") makes no sense, e.g. a server to connect to. */
export function port(value: unknown, option: string, min: 0 | 1 = 0): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > 65_535) {
    throw new InvalidOptionError(option, `must be a port number (${min}-65535)`);
  }
  return value;
}

/** A port given as a number or as decimal text (a flag, an environment variable, the port of `host:port`). */
export function portText(value: unknown, option: string, min: 0 | 1 = 0): number | undefined {
  if (value === undefined) return undefined;
  return port(typeof value === 'number' ? value : typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : NaN, option, min);
}

/** A duration in milliseconds: positive, or non-negative with `allowZero`; whole milliseconds with `integer`. */
export function durationMs(value: unknown, option: string, allowZero = false, integer = false): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || (value === 0 && !allowZero) || (integer && !Number.isInteger(value))) {
    throw new InvalidOptionError(option, `must be a ${allowZero ? 'non-negative' : 'positive'} ${integer ? 'integer' : 'number'} of milliseconds`);
  }
  return value;
}

/**
 * An ACME account contact (RFC 8555 §7.3 sends it as one `mailto:` URI).
 * The rule is what the public CAs accept: Let's Encrypt (Boulder) refuses a
 * domain without a public suffix, so a dotless domain such as `localhost`
 * is refused here rather than at the first order; characters that would
 * break or extend the mailto URI (`,` for a second address, `?` for hfields,
 * spaces, `<>()[];:"`) are refused too.
 */
const EMAIL = /^[^\s@<>()[\],;:"?]+@(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z0-9-]*[A-Za-z][A-Za-z0-9-]*$/;

export function email(value: unknown, option: string): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !EMAIL.test(value)) {
    throw new InvalidOptionError(option, 'must be an e-mail address whose domain has a dot (e.g. ops@example.com)');
  }
  return value;
}

/**
 * An external account binding HMAC key. RFC 8555 §7.3.4 has CAs hand out
 * base64url, but some consoles show standard base64 (`+`, `/`, `=` padding);
 * both decode to the same bytes, so either is accepted and normalised to
 * unpadded base64url. The key itself never appears in a message.
 */
export function hmacKey(value: unknown, option: string): string {
  const text = typeof value === 'string' ? value.trim() : '';
  const bare = text.replace(/={1,2}$/, '');
  if (!/^[A-Za-z0-9+/_-]+$/.test(bare) || bare.length % 4 === 1 || (/[+/]/.test(bare) && /[-_]/.test(bare))) {
    throw new InvalidOptionError(option, 'must be the base64url (or base64) key given by the CA');
  }
  return bare.replace(/\+/g, '-').replace(/\//g, '_');
}

export interface ExternalAccountBindingInput {
  kid: string;
  hmacKey: string;
}

export function externalAccountBinding(value: unknown, option: string): Readonly<ExternalAccountBindingInput> | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'object' || value === null) throw new InvalidOptionError(option, 'must be { kid, hmacKey }');
  const { kid, hmacKey: key } = value as Partial<ExternalAccountBindingInput>;
  if (typeof kid !== 'string' || kid.length === 0) throw new InvalidOptionError(`${option}.kid`, 'must be a non-empty string');
  return Object.freeze({ kid, hmacKey: hmacKey(key, `${option}.hmacKey`) });
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/;

/** PEM certificate text, one string or an array of them. */
export function pemCertificates(value: unknown, option: string): readonly string[] {
  if (value === undefined) return Object.freeze([]);
  const list: unknown[] = Array.isArray(value) ? value : [value];
  for (const pem of list) {
    if (typeof pem !== 'string' || !PEM_CERT.test(pem)) {
      throw new InvalidOptionError(option, 'must be PEM certificate text (or an array of them)');
    }
  }
  return Object.freeze([...(list as string[])]);
}

/** Profile names as CAs publish them (Let's Encrypt: classic, tlsserver, shortlived): a token, no spaces. */
const PROFILE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export function isProfileName(value: unknown): value is string {
  return typeof value === 'string' && PROFILE_NAME.test(value);
}

/** An ACME profile name, or an ordered preference of them; a list comes back frozen and without repeats. */
export function profilePreference(value: unknown, option: string): readonly string[] | undefined {
  if (value === undefined) return undefined;
  const list: unknown[] = Array.isArray(value) ? value : [value];
  if (list.length === 0 || !list.every(isProfileName)) {
    throw new InvalidOptionError(option, "must be a profile name or a non-empty list of them, in order of preference (e.g. ['tlsserver', 'classic'])");
  }
  return Object.freeze([...new Set(list as string[])]);
}
