/**
 * Encryption at rest for the secrets certkeeper stores: private keys (`*.key`,
 * certificate and account keys, internal CA keys) and write-ahead `*.pending`
 * bundles (they carry a private key too). Certificates and metadata stay
 * readable, so operators can still inspect storage.
 *
 * Format of an encrypted value (AES-256-GCM, node:crypto):
 *
 *   magic "CKENC" (5) | version 0x01 (1) | key id (8) | IV (12) | auth tag (16) | ciphertext
 *
 * The header (magic, version, key id) is authenticated as additional data. The
 * key id is a truncated SHA-256 of the key under a fixed label: it reveals
 * nothing usable about a 256-bit key, and it lets a wrong key be reported as
 * "wrong key" rather than as "corrupted".
 */
import { createCipheriv, createDecipheriv, createHash, createSecretKey, randomBytes, type KeyObject } from 'node:crypto';
import { InvalidOptionError, StorageError } from '../errors.js';
import { validateKey } from './keys.js';
import type { FencedWrite, FencedWriter, FolderLister, KeyInfo, LockLeaseChecker, LockOptions, Storage, StoreOptions, TryLocker } from './types.js';

const MAGIC = Buffer.from('CKENC', 'latin1');
const VERSION = 1;
const KEY_ID_LENGTH = 8;
const IV_LENGTH = 12;
const TAG_LENGTH = 16;
const HEADER_LENGTH = MAGIC.length + 1 + KEY_ID_LENGTH;
const MIN_ENCRYPTED_LENGTH = HEADER_LENGTH + IV_LENGTH + TAG_LENGTH;
const KEY_LENGTH = 32;

/** Storage keys whose values are encrypted: private keys and pending certificate bundles. */
export function isSecretStorageKey(key: string): boolean {
  return key.endsWith('.key') || key.endsWith('.pending');
}

/** True when `value` starts with the encrypted-value header (any version). */
export function isEncryptedValue(value: Uint8Array): boolean {
  return value.length >= MAGIC.length && Buffer.from(value.buffer, value.byteOffset, MAGIC.length).equals(MAGIC);
}

export interface KeyEncryptorOptions {
  /**
   * Accept values stored before encryption was turned on (plaintext) when
   * loading; they are encrypted the next time they are written. Default true;
   * set false to refuse any unencrypted secret.
   */
  allowPlaintext?: boolean | undefined;
}

export interface KeyEncryptor {
  /** Encrypts any bytes. */
  encrypt(plaintext: Uint8Array): Buffer;
  /** Decrypts bytes made by encrypt(); `storageKey` only names the value in errors. */
  decrypt(stored: Uint8Array, storageKey: string): Buffer;
  /** Encrypts `value` when `storageKey` holds a secret, otherwise returns it unchanged. */
  seal(storageKey: string, value: Uint8Array): Uint8Array;
  /** Reverses seal() for a value loaded from `storageKey`. */
  open(storageKey: string, stored: Buffer): Buffer;
}

/**
 * Builds an AES-256-GCM encryptor from a 32-byte key: a Buffer/Uint8Array, or a
 * string holding it as base64 (or 64 hex digits). Generate one with
 * `openssl rand -base64 32`. The key is copied; errors never include it.
 */
export function createKeyEncryptor(key: Uint8Array | string, options: KeyEncryptorOptions = {}): KeyEncryptor {
  const raw = parseEncryptionKey(key, 'encryptionKey');
  const allowPlaintext = options.allowPlaintext ?? true;
  if (typeof allowPlaintext !== 'boolean') throw new InvalidOptionError('allowPlaintext', 'must be a boolean');
  const secret: KeyObject = createSecretKey(raw);
  const keyId = createHash('sha256').update('certkeeper encryption key id\0').update(raw).digest().subarray(0, KEY_ID_LENGTH);
  raw.fill(0);
  const header = Buffer.concat([MAGIC, Buffer.from([VERSION]), keyId]);

  const encrypt = (plaintext: Uint8Array): Buffer => {
    const iv = randomBytes(IV_LENGTH);
    const cipher = createCipheriv('aes-256-gcm', secret, iv, { authTagLength: TAG_LENGTH });
    cipher.setAAD(header);
    const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    return Buffer.concat([header, iv, cipher.getAuthTag(), body]);
  };

  const decrypt = (stored: Uint8Array, storageKey: string): Buffer => {
    const data = Buffer.from(stored.buffer, stored.byteOffset, stored.byteLength);
    if (!isEncryptedValue(data) || data.length < MIN_ENCRYPTED_LENGTH) {
      throw new StorageError(`Cannot decrypt storage key ${storageKey}: the value is not in certkeeper's encrypted format`);
    }
    const version = data[MAGIC.length];
    if (version !== VERSION) {
      throw new StorageError(`Cannot decrypt storage key ${storageKey}: unsupported encryption format version ${String(version)}`);
    }
    const storedHeader = data.subarray(0, HEADER_LENGTH);
    if (!storedHeader.subarray(MAGIC.length + 1).equals(keyId)) {
      throw new StorageError(
        `Cannot decrypt storage key ${storageKey}: it was encrypted with a different encryptionKey`,
      );
    }
    const iv = data.subarray(HEADER_LENGTH, HEADER_LENGTH + IV_LENGTH);
    const tag = data.subarray(HEADER_LENGTH + IV_LENGTH, MIN_ENCRYPTED_LENGTH);
    const decipher = createDecipheriv('aes-256-gcm', secret, iv, { authTagLength: TAG_LENGTH });
    decipher.setAAD(storedHeader);
    decipher.setAuthTag(tag);
    try {
      return Buffer.concat([decipher.update(data.subarray(MIN_ENCRYPTED_LENGTH)), decipher.final()]);
    } catch (error) {
      throw new StorageError(
        `Cannot decrypt storage key ${storageKey}: authentication failed (the value is corrupted or was modified)`,
        { cause: error },
      );
    }
  };

  return Object.freeze({
    encrypt,
    decrypt,
    seal(storageKey: string, value: Uint8Array): Uint8Array {
      return isSecretStorageKey(storageKey) ? encrypt(value) : value;
    },
    open(storageKey: string, stored: Buffer): Buffer {
      if (!isSecretStorageKey(storageKey)) return stored;
      if (isEncryptedValue(stored)) return decrypt(stored, storageKey);
      if (allowPlaintext) return stored;
      throw new StorageError(`Storage key ${storageKey} holds an unencrypted secret and allowPlaintext is false`);
    },
  });
}

/** Decodes and checks a 32-byte key; `option` names it in the error. Returns a private copy. */
export function parseEncryptionKey(key: unknown, option: string): Buffer {
  let raw: Buffer | undefined;
  if (key instanceof Uint8Array) {
    raw = Buffer.from(key);
  } else if (typeof key === 'string') {
    const text = key.trim();
    if (/^[0-9a-fA-F]{64}$/.test(text)) raw = Buffer.from(text, 'hex');
    else if (/^[A-Za-z0-9+/_-]+={0,2}$/.test(text)) raw = Buffer.from(text, text.includes('-') || text.includes('_') ? 'base64url' : 'base64');
  } else {
    throw new InvalidOptionError(option, 'must be a 32-byte Buffer or a base64 string of 32 bytes');
  }
  if (raw === undefined || raw.length !== KEY_LENGTH) {
    raw?.fill(0);
    throw new InvalidOptionError(option, 'must be exactly 32 bytes (a Buffer, base64 or 64 hex digits; e.g. `openssl rand -base64 32`)');
  }
  return raw;
}

/**
 * Wraps any Storage so that secrets are encrypted before they reach it and
 * decrypted when loaded. Locks and the optional capabilities (tryLock,
 * assertLockHeld, writeFenced with its values sealed, close) are forwarded; stat() reports the stored
 * (encrypted) size.
 */
export function encryptPrivateKeys(
  storage: Storage,
  key: Uint8Array | string | KeyEncryptor,
  options: KeyEncryptorOptions = {},
): Storage & Partial<TryLocker & LockLeaseChecker & FencedWriter & FolderLister> {
  const encryptor = isKeyEncryptor(key) ? key : createKeyEncryptor(key, options);
  const wrapped: Storage & Partial<TryLocker & LockLeaseChecker & FencedWriter & FolderLister> = {
    store: (k: string, value: Uint8Array, storeOptions?: StoreOptions) => storage.store(k, encryptor.seal(k, value), storeOptions),
    load: async (k: string) => encryptor.open(k, await storage.load(k)),
    delete: (k: string) => storage.delete(k),
    exists: (k: string) => storage.exists(k),
    list: (prefix: string, recursive: boolean) => storage.list(prefix, recursive),
    stat: (k: string): Promise<KeyInfo> => storage.stat(k),
    lock: (name: string, lockOptions?: LockOptions) => storage.lock(name, lockOptions),
    unlock: (name: string) => storage.unlock(name),
  };
  // Only forward what the backend has, so run-time capability checks stay truthful.
  const inner = storage as Storage & Partial<TryLocker & LockLeaseChecker & FencedWriter & FolderLister>;
  if (typeof inner.tryLock === 'function') wrapped.tryLock = (name) => inner.tryLock!(name);
  if (typeof inner.assertLockHeld === 'function') wrapped.assertLockHeld = (name) => inner.assertLockHeld!(name);
  if (typeof inner.writeFenced === 'function') {
    wrapped.writeFenced = (lock, writes) => inner.writeFenced!(lock, sealWrites(writes, encryptor));
  }
  if (typeof inner.listFolders === 'function') wrapped.listFolders = (prefix) => inner.listFolders!(prefix);
  if (typeof inner.close === 'function') wrapped.close = () => inner.close!();
  return wrapped;
}

function isKeyEncryptor(value: unknown): value is KeyEncryptor {
  return (
    typeof value === 'object' &&
    value !== null &&
    !(value instanceof Uint8Array) &&
    typeof (value as KeyEncryptor).seal === 'function' &&
    typeof (value as KeyEncryptor).open === 'function'
  );
}

/**
 * A fenced write list as a backend stores it: keys validated (normalised),
 * values copied and, with an encryptor, secrets sealed. For adapters'
 * writeFenced, which apply the list as it comes back.
 */
export function sealWrites(writes: readonly FencedWrite[], encryptor: KeyEncryptor | undefined): FencedWrite[] {
  return writes.map((w): FencedWrite => {
    const key = validateKey(w.key);
    const order = w.unordered === true ? { unordered: true } : {};
    if ('delete' in w) return { key, delete: true, ...order };
    return { key, value: Buffer.from(encryptor ? encryptor.seal(key, w.value) : w.value), ...order };
  });
}
