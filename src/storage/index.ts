/**
 * `certkeeper/storage`: the building blocks for storage adapters (published
 * ones such as `@certkeeper/storage-redis`, or your own). An adapter imports
 * the core only through this subpath, so the errors it throws and the types it
 * implements are the ones the installed `certkeeper` checks.
 */
export * from '../errors.js';
export type * from './types.js';
export { hasTryLock, hasLockLeaseCheck, hasFencedWrites, hasFolderListing } from './types.js';
export { Closable, Lifecycle, type CloseStep } from '../lifecycle.js';
export { validateKey, validatePrefix, validateLockName, joinKey, MAX_KEY_LENGTH } from './keys.js';
export {
  LeaseLocks,
  resolveLeaseLockOptions,
  DEFAULT_LOCK_TTL_MS,
  DEFAULT_LOCK_POLL_MS,
  type LeaseBackend,
  type LeaseLockOptions,
  type ResolvedLeaseLockOptions,
} from './lease-locks.js';
export {
  createKeyEncryptor,
  encryptPrivateKeys,
  sealWrites,
  isSecretStorageKey,
  type KeyEncryptor,
  type KeyEncryptorOptions,
} from './encryption.js';
export { storageFromUrl, parseStorageUrl, redactStorageUrl, STORAGE_URL_FORMS, type StorageFromUrlOptions, type StorageLocation } from './url.js';
export { validateLogger, type Logger, type LogLevel } from '../logger.js';
