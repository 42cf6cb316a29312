/**
 * Storage key validation shared by every backend. Keys built by layout.ts are
 * already safe; this is the second fence for keys from anywhere else (custom
 * callers, adapters), so a key can never name something outside the storage
 * root. We reject rather than sanitise: silently rewriting `a/../b` into
 * something else would hide bugs and could alias two different keys.
 */
import { InvalidStorageKeyError } from '../errors.js';

/** Generous limit: real keys are well under 600 characters (253-char names, twice, plus folders). */
export const MAX_KEY_LENGTH = 1024;

// Control characters (C0, DEL, C1); NUL is the one that truncates paths in C APIs.
// eslint-disable-next-line no-control-regex
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f-\u009f]/;
// `%2e` (.), `%2f` (/), `%5c` (\) and `%00` (NUL) can turn into traversal if any layer decodes the key.
const ENCODED_TRAVERSAL = /%(?:2e|2f|5c|00)/i;
// `C:` at the start would make a key absolute on Windows.
const DRIVE_LETTER = /^[A-Za-z]:/;

/**
 * Validates a storage key and returns it normalised (duplicate and trailing
 * slashes removed). Throws InvalidStorageKeyError for empty or absolute keys,
 * `.`/`..` components, backslashes, control characters (including NUL) and
 * percent-encoded traversal.
 */
export function validateKey(key: unknown): string {
  const normalised = checkKey(key, false);
  if (normalised === '') throw new InvalidStorageKeyError(String(key), 'is empty');
  return normalised;
}

/** Like validateKey, but `''` is allowed and means the storage root (for list). */
export function validatePrefix(prefix: unknown): string {
  return checkKey(prefix, true);
}

/** A lock name is a single key component (no `/`), so it maps to exactly one lock. */
export function validateLockName(name: unknown): string {
  const normalised = validateKey(name);
  if (normalised.includes('/') || normalised !== name) {
    throw new InvalidStorageKeyError(String(name), 'a lock name must be a single component without "/"');
  }
  return normalised;
}

/** Splits a validated key into its components. */
export function keyComponents(key: string): string[] {
  return key === '' ? [] : key.split('/');
}

/** Joins a prefix and a child component into a key. */
export function joinKey(prefix: string, child: string): string {
  return prefix === '' ? child : `${prefix}/${child}`;
}

function checkKey(key: unknown, allowEmpty: boolean): string {
  if (typeof key !== 'string') throw new InvalidStorageKeyError(String(key), 'must be a string');
  if (key.length === 0) {
    if (allowEmpty) return '';
    throw new InvalidStorageKeyError(key, 'is empty');
  }
  if (key.length > MAX_KEY_LENGTH) throw new InvalidStorageKeyError(key, `is longer than ${MAX_KEY_LENGTH} characters`);
  if (CONTROL_CHARACTERS.test(key)) throw new InvalidStorageKeyError(key, 'contains control characters');
  if (key.includes('\\')) throw new InvalidStorageKeyError(key, 'contains a backslash');
  if (ENCODED_TRAVERSAL.test(key)) throw new InvalidStorageKeyError(key, 'contains a percent-encoded ".", "/", "\\" or NUL');
  if (key.startsWith('/')) throw new InvalidStorageKeyError(key, 'is absolute');
  if (DRIVE_LETTER.test(key)) throw new InvalidStorageKeyError(key, 'starts with a drive letter');
  const components = key.split('/').filter((c) => c !== '');
  for (const component of components) {
    if (component === '.' || component === '..') {
      throw new InvalidStorageKeyError(key, 'contains a "." or ".." component');
    }
  }
  if (components.length === 0 && !allowEmpty) throw new InvalidStorageKeyError(key, 'is empty');
  return components.join('/');
}
