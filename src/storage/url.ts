/**
 * Storage from one string, for the CLI, config files and the environment:
 *
 *   /abs/dir, ./dir, file:///abs/dir, file:relative/dir   FileStorage
 *   redis://[user:pass@]host:port[/db][?prefix=p]          @certkeeper/storage-redis (rediss:// for TLS)
 *   postgres[ql]://user[:pass]@host:port/db[?schema=s&table=t&lockTable=l]   @certkeeper/storage-postgres
 *   etcd://host:port[,host2:port2][/prefix]                @certkeeper/storage-etcd
 *
 * An adapter package is imported only when its scheme is used, so the core
 * never depends on ioredis, pg or etcd3. URLs carry passwords: every message
 * and log line names the URL through redactStorageUrl().
 */
import { createRequire } from 'node:module';
import { stat } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { CertKeeperError, InvalidOptionError, StorageAdapterMissingError, StorageError } from '../errors.js';
import type { Logger } from '../logger.js';
import { REDACTED } from '../redact.js';
import type { Storage } from './types.js';

/** The forms storageFromUrl accepts, as they are printed in errors and help. */
export const STORAGE_URL_FORMS: readonly string[] = ['a directory path', 'file:', 'redis://', 'rediss://', 'postgres://', 'postgresql://', 'etcd://'];

export interface StorageFromUrlOptions {
  logger?: Logger | undefined;
  /** Encrypts private keys at rest (every backend supports it): 32 bytes, or base64/hex of them. */
  encryptionKey?: Uint8Array | string | undefined;
  /** Directory a relative path is resolved against (default process.cwd()). */
  cwd?: string | undefined;
  /** A file storage directory must exist already (readers: a typo must not look like an empty store). */
  requireExisting?: boolean | undefined;
  /** More constructor options for the adapter (lock timings, pool sizes...); the URL's own settings win. */
  adapterOptions?: Readonly<Record<string, unknown>> | undefined;
  /** How an adapter package is imported (default: `import()` from certkeeper's place, then from cwd). Tests inject failures here. */
  importPackage?: ((packageName: string) => Promise<unknown>) | undefined;
}

/** Where a storage string points, parsed but not opened. */
export type StorageLocation =
  | { kind: 'file'; root: string }
  | { kind: 'adapter'; scheme: string; packageName: string; exportName: string; options: Record<string, unknown> };

const SCHEME = /^([a-z][a-z0-9+.-]*):/i;

/** True when the string names a non-file backend (a URL other than file:). */
export function isRemoteStorageUrl(value: string): boolean {
  const scheme = SCHEME.exec(value)?.[1]?.toLowerCase();
  // One letter is a Windows drive (C:\...), not a scheme.
  return scheme !== undefined && scheme.length > 1 && scheme !== 'file';
}

/**
 * The storage string with credentials replaced by `[redacted]`: the password of
 * the user-info (the user name stays, operators need it) and query values
 * whose name says secret. Paths come back unchanged.
 */
export function redactStorageUrl(value: string): string {
  if (!isRemoteStorageUrl(value)) return value;
  return value
    .replace(/^([a-z][a-z0-9+.-]*:\/\/)([^/?#@:]*):[^/?#]*@/i, (_m, scheme: string, user: string) => `${scheme}${user}:${REDACTED}@`)
    .replace(/([?&][^=&#]*(?:pass|secret|token|key|auth)[^=&#]*=)[^&#]*/gi, `$1${REDACTED}`);
}

/** Parses a storage string (pure: nothing is opened or imported). Throws InvalidOptionError naming `option`. */
export function parseStorageUrl(value: string, cwd: string = process.cwd(), option = 'storage'): StorageLocation {
  if (typeof value !== 'string' || value.length === 0) throw new InvalidOptionError(option, 'must be a non-empty storage URL or directory');
  const scheme = SCHEME.exec(value)?.[1]?.toLowerCase();
  // One letter is a Windows drive (C:\...), not a scheme.
  if (scheme === undefined || scheme.length === 1) return { kind: 'file', root: resolve(cwd, value) };
  const shown = redactStorageUrl(value);
  switch (scheme) {
    case 'file':
      return { kind: 'file', root: filePath(value, cwd, option) };
    case 'redis':
    case 'rediss':
      return adapter(scheme, '@certkeeper/storage-redis', 'RedisStorage', redisOptions(value, shown, option));
    case 'postgres':
    case 'postgresql':
      return adapter(scheme, '@certkeeper/storage-postgres', 'PostgresStorage', postgresOptions(value, shown, option));
    case 'etcd':
      return adapter(scheme, '@certkeeper/storage-etcd', 'EtcdStorage', etcdOptions(value, shown, option));
    default:
      throw new InvalidOptionError(option, `unsupported storage URL scheme "${scheme}:" in ${JSON.stringify(shown)}; accepted: ${STORAGE_URL_FORMS.join(', ')}`);
  }
}

/** Opens the storage a URL or directory names; the caller closes it. */
export async function storageFromUrl(value: string, options: StorageFromUrlOptions = {}): Promise<Storage> {
  const cwd = options.cwd ?? process.cwd();
  const location = parseStorageUrl(value, cwd);
  const common = {
    ...(options.logger !== undefined ? { logger: options.logger } : {}),
    ...(options.encryptionKey !== undefined ? { encryptionKey: options.encryptionKey } : {}),
  };
  if (location.kind === 'file') {
    if (options.requireExisting === true) await assertDirectory(location.root);
    // Loaded on use: adapters import `certkeeper/storage` and need no FileStorage.
    const { FileStorage } = await import('./file.js');
    return new FileStorage({ ...options.adapterOptions, ...common, root: location.root });
  }
  const module = await importAdapter(location.packageName, location.scheme, cwd, options.importPackage);
  const Adapter = (module as Record<string, unknown> | undefined)?.[location.exportName];
  if (typeof Adapter !== 'function') {
    throw new StorageError(`${location.packageName} does not export ${location.exportName}: is its version one for this certkeeper?`);
  }
  const ctor = Adapter as new (options: Record<string, unknown>) => Storage;
  return new ctor({ ...options.adapterOptions, ...common, ...location.options });
}

async function assertDirectory(root: string): Promise<void> {
  let isDirectory: boolean;
  try {
    isDirectory = (await stat(root)).isDirectory();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new InvalidOptionError('storage', `the storage directory ${root} does not exist`, { cause: error });
    }
    throw new StorageError(`cannot read the storage directory ${root}: ${(error as Error).message}`, { cause: error });
  }
  if (!isDirectory) throw new InvalidOptionError('storage', `${root} is not a directory`);
}

async function importAdapter(packageName: string, scheme: string, cwd: string, importPackage?: (name: string) => Promise<unknown>): Promise<unknown> {
  try {
    if (importPackage !== undefined) return await importPackage(packageName);
    try {
      return await import(packageName);
    } catch (error) {
      if (!isModuleNotFound(error)) throw error;
      // A global `certkeeper` bin finds the adapter installed in the project it runs in.
      const resolved = createRequire(join(cwd, 'noop.js')).resolve(packageName);
      return await import(pathToFileURL(resolved).href);
    }
  } catch (error) {
    if (isModuleNotFound(error)) throw new StorageAdapterMissingError(packageName, scheme, { cause: error });
    if (error instanceof CertKeeperError) throw error;
    throw new StorageError(`${packageName} could not be loaded: ${(error as Error).message}`, { cause: error });
  }
}

function isModuleNotFound(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND';
}

function adapter(scheme: string, packageName: string, exportName: string, options: Record<string, unknown>): StorageLocation {
  return { kind: 'adapter', scheme, packageName, exportName, options };
}

function filePath(value: string, cwd: string, option: string): string {
  if (/^file:\/\//i.test(value)) {
    try {
      return fileURLToPath(value);
    } catch (error) {
      throw new InvalidOptionError(option, `${JSON.stringify(value)} is not a local file URL (file:///absolute/path): ${(error as Error).message}`);
    }
  }
  const path = decodeURIComponent(value.slice('file:'.length));
  if (path.length === 0) throw new InvalidOptionError(option, 'file: needs a path (file:///absolute/path or file:relative/path)');
  return isAbsolute(path) ? path : resolve(cwd, path);
}

function parseUrl(value: string, shown: string, option: string): URL {
  try {
    return new URL(value);
  } catch {
    throw new InvalidOptionError(option, `${JSON.stringify(shown)} is not a valid URL`);
  }
}

/** Takes certkeeper's own query parameters out, so the client library never sees (or rejects) them. */
function takeParams(url: URL, names: readonly string[]): Record<string, string> {
  const taken: Record<string, string> = {};
  for (const name of names) {
    const param = url.searchParams.get(name);
    if (param !== null) taken[name] = param;
    url.searchParams.delete(name);
  }
  return taken;
}

function redisOptions(value: string, shown: string, option: string): Record<string, unknown> {
  const url = parseUrl(value, shown, option);
  const { prefix } = takeParams(url, ['prefix']);
  return { url: url.href, ...(prefix !== undefined ? { prefix } : {}) };
}

function postgresOptions(value: string, shown: string, option: string): Record<string, unknown> {
  const url = parseUrl(value, shown, option);
  const { schema, table, lockTable } = takeParams(url, ['schema', 'table', 'lockTable']);
  return {
    connectionString: url.href,
    ...(schema !== undefined ? { schema } : {}),
    ...(table !== undefined ? { tableName: table } : {}),
    ...(lockTable !== undefined ? { lockTable } : {}),
  };
}

/**
 * etcd://[user:pass@]host:port[,host2:port2][/prefix]: several hosts do not fit
 * WHATWG URL parsing, so this one is split by hand. The mapping to the
 * adapter's constructor options lives here alone.
 */
export function etcdOptions(value: string, shown: string, option = 'storage'): Record<string, unknown> {
  const match = /^etcd:\/\/(?:([^@/?#]*)@)?([^/?#]+)(\/[^?#]*)?$/i.exec(value);
  if (!match) throw new InvalidOptionError(option, `${JSON.stringify(shown)} is not an etcd://host:port[,host:port][/prefix] URL`);
  const [, userinfo, hostList = '', path] = match;
  const hosts = hostList.split(',').map((host) => {
    if (!/^[A-Za-z0-9.-]+:\d{1,5}$|^\[[0-9A-Fa-f:.]+\]:\d{1,5}$/.test(host)) {
      throw new InvalidOptionError(option, `etcd host ${JSON.stringify(host)} in ${JSON.stringify(shown)} must be host:port`);
    }
    return `http://${host}`;
  });
  const prefix = path === undefined ? '' : decodeURIComponent(path.slice(1));
  // The options of @certkeeper/storage-etcd's EtcdStorage: client URLs, key prefix, and etcd3's own auth option.
  const options: Record<string, unknown> = { endpoints: hosts, ...(prefix !== '' ? { prefix } : {}) };
  if (userinfo !== undefined && userinfo !== '') {
    const colon = userinfo.indexOf(':');
    options.etcdOptions = {
      auth: {
        username: decodeURIComponent(colon < 0 ? userinfo : userinfo.slice(0, colon)),
        password: colon < 0 ? '' : decodeURIComponent(userinfo.slice(colon + 1)),
      },
    };
  }
  return options;
}
