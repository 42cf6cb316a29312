/** FileStorage's options, their limits and defaults, validated once. */
import { homedir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { InvalidOptionError } from '../errors.js';
import { type Logger, createDefaultLogger, validateLogger } from '../logger.js';
import { DEFAULT_LOCK_STALE_MS } from '../defaults.js';
export { DEFAULT_LOCK_STALE_MS };

/** proper-lockfile refuses to treat locks younger than 2 s as stale. */
export const MIN_LOCK_STALE_MS = 2_000;
/** proper-lockfile refreshes at most once a second. */
export const MIN_LOCK_REFRESH_MS = 1_000;
/** Waiting for a busy lock polls with exponential backoff, starting here... */
export const LOCK_POLL_INITIAL_MS = 25;
/** ...and never sleeping longer than this between attempts. */
export const LOCK_POLL_MAX_MS = 1_000;
export const FILE_MODE = 0o600;
export const DIRECTORY_MODE = 0o700;
/** The directory, under the root, holding lock directories. */
export const LOCKS_FOLDER = 'locks';
/** Temp files are named `.tmp-<16 hex>`: short (long key components stay under NAME_MAX) and skipped by list(). */
export const TEMP_NAME = /^\.tmp-[0-9a-f]{16}$/;
/**
 * A temp file older than this was left by a writer that died between write and rename (it holds a
 * private key, maybe): removed by the sweep each instance runs once. A live write takes milliseconds.
 */
export const STALE_TEMP_FILE_MS = 60_000;
/** The sweep starts this long after an instance's first operation: off the start-up path, and it also catches temp files still young at start. */
export const TEMP_SWEEP_DELAY_MS = STALE_TEMP_FILE_MS;

export interface FileStorageOptions {
  /** Root directory. Default: `$XDG_DATA_HOME/certkeeper`, else `~/.local/share/certkeeper`. */
  root?: string | undefined;
  /** A lock not refreshed for this long is considered abandoned and taken over (default 10 000 ms, minimum 2 000). */
  lockStaleMs?: number | undefined;
  /** How often a held lock is refreshed (default: half of lockStaleMs; between 1 000 ms and lockStaleMs / 2). */
  lockRefreshMs?: number | undefined;
  logger?: Logger | undefined;
  /**
   * Encrypt private keys at rest (`*.key` and `*.pending` values) with AES-256-GCM:
   * 32 bytes, or base64 of them (`openssl rand -base64 32`). Never logged; not kept in `options`.
   */
  encryptionKey?: Uint8Array | string | undefined;
}

export interface ResolvedFileStorageOptions {
  readonly root: string;
  readonly lockStaleMs: number;
  readonly lockRefreshMs: number;
  readonly logger: Logger;
}

export function defaultFileStorageRoot(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env.XDG_DATA_HOME;
  // The XDG spec says relative values are invalid and must be ignored.
  if (xdg && isAbsolute(xdg)) return join(xdg, 'certkeeper');
  return join(homedir(), '.local', 'share', 'certkeeper');
}

export function resolveFileStorageOptions(options: FileStorageOptions = {}): ResolvedFileStorageOptions {
  if (typeof options !== 'object' || options === null) throw new InvalidOptionError('options', 'must be an object');
  const { root, lockStaleMs, lockRefreshMs, logger } = options;
  if (root !== undefined && (typeof root !== 'string' || root.length === 0 || root.includes('\0'))) {
    throw new InvalidOptionError('root', 'must be a non-empty path');
  }
  const stale = lockStaleMs ?? DEFAULT_LOCK_STALE_MS;
  if (!Number.isInteger(stale) || stale < MIN_LOCK_STALE_MS) {
    throw new InvalidOptionError('lockStaleMs', `must be an integer of at least ${MIN_LOCK_STALE_MS} ms`);
  }
  const refresh = lockRefreshMs ?? Math.floor(stale / 2);
  if (!Number.isInteger(refresh) || refresh < MIN_LOCK_REFRESH_MS || refresh > stale / 2) {
    throw new InvalidOptionError('lockRefreshMs', `must be an integer between ${MIN_LOCK_REFRESH_MS} ms and half of lockStaleMs`);
  }
  return Object.freeze({
    root: resolve(root ?? defaultFileStorageRoot()),
    lockStaleMs: stale,
    lockRefreshMs: refresh,
    logger: logger === undefined ? createDefaultLogger('silent') : validateLogger(logger),
  });
}
