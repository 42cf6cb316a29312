/**
 * Redis storage for certkeeper fleets: every instance that points at the same
 * Redis (and prefix) shares certificates, accounts, challenge tokens and locks.
 *
 * Layout under the prefix (default `certkeeper:`):
 *   <prefix>v:<key>      hash { v: value bytes, m: modified epoch ms }
 *   <prefix>index        sorted set of every key (all scores 0), ordered bytewise,
 *                        so a folder is a ZRANGEBYLEX range: no KEYS, no SCAN
 *   <prefix>folders      sorted set of every folder with a key below it (each level), so listFolders reads
 *                        a million certificate folders, not their 3M keys
 *   <prefix>folders:ready  set once the folder index is complete: a store written by a version without it
 *                        is indexed once, a page per script, by the first listFolders
 *   <prefix>lock:<name>  lock token, always with a PX expiry
 *   <prefix>fence:<name> the lock's fencing counter: INCR'd by every grant, never expires
 *
 * A value and its index entry are written in one MULTI, and a recursive delete
 * is one Lua script, so readers never see a key in the index without a value.
 * A fenced write is one Lua script too (scripts.ts): it compares the lock's
 * holder and fencing token and applies every write, or none.
 */
import { Redis, type RedisOptions } from 'ioredis';
import {
  Closable,
  createKeyEncryptor,
  type FencedWrite,
  type FencedWriter,
  type FolderLister,
  InvalidOptionError,
  type KeyEncryptor,
  type KeyInfo,
  type LeaseBackend,
  type LeaseLockOptions,
  LeaseLocks,
  type LockLeaseChecker,
  type LockOptions,
  type Logger,
  resolveLeaseLockOptions,
  sealWrites,
  type Storage,
  StorageError,
  StorageNotFoundError,
  type TryLocker,
  validateKey,
  validateLogger,
  validatePrefix,
} from 'certkeeper/storage';
import { addListed, below, foldersAbove } from './key-ranges.js';
import { ACQUIRE_SCRIPT, BACKFILL_FOLDERS_SCRIPT, DELETE_SCRIPT, FENCED_WRITE_SCRIPT, REFRESH_SCRIPT, RELEASE_SCRIPT, scriptSha } from './scripts.js';

export const DEFAULT_REDIS_PREFIX = 'certkeeper:';
/**
 * Longest a single Redis call may take before it fails with ERR_STORAGE. A server
 * behind a hung proxy, or gone, must not hold a name's lock and an order slot for
 * minutes; kept well under the default lock lease (10 s) so a refresh can fail and retry in time.
 */
export const DEFAULT_OPERATION_TIMEOUT_MS = 5_000;
/** Index entries fetched per round trip when listing. */
const LIST_PAGE_SIZE = 1000;
/** Folder-index entries fetched per round trip by listFolders. */
const FOLDER_PAGE_SIZE = 10_000;
/** Index entries one backfill script indexes: a few ms of the server's time, then other clients get a turn. */
const BACKFILL_PAGE_SIZE = 2000;

export interface RedisStorageOptions extends LeaseLockOptions {
  /** Your own ioredis client; it is used as is and not closed by close(). */
  client?: Redis | undefined;
  /** Connection URL (`redis://host:port/db`) for a client this storage creates and closes. */
  url?: string | undefined;
  /** ioredis options for a client this storage creates (combined with url when both are given). */
  redisOptions?: RedisOptions | undefined;
  /** Prefix of every Redis key this storage uses (default `certkeeper:`). Instances sharing data must use the same one. */
  prefix?: string | undefined;
  /** Encrypts private keys and pending bundles at rest (AES-256-GCM): 32 bytes, or base64/hex of them. */
  encryptionKey?: Uint8Array | string | undefined;
  logger?: Logger | undefined;
  /** Every Redis call fails with ERR_STORAGE after this many milliseconds (default 5 000). */
  operationTimeoutMs?: number | undefined;
}

export class RedisStorage extends Closable implements Storage, TryLocker, LockLeaseChecker, FencedWriter, FolderLister {
  readonly #client: Redis;
  readonly #ownsClient: boolean;
  readonly #prefix: string;
  /** The data-key prefix as Redis sees it, including the client's own keyPrefix (Lua builds keys from it). */
  readonly #dataPrefixInLua: string;
  readonly #encryptor: KeyEncryptor | undefined;
  readonly #locks: LeaseLocks;
  readonly #log: Logger | undefined;
  readonly #timeoutMs: number;
  /** The folder index is known complete (folders:ready seen or set). */
  #foldersIndexed = false;

  constructor(options: RedisStorageOptions = {}) {
    super('RedisStorage');
    const { client, url, redisOptions, prefix = DEFAULT_REDIS_PREFIX, encryptionKey, logger, operationTimeoutMs = DEFAULT_OPERATION_TIMEOUT_MS } = options;
    if (typeof operationTimeoutMs !== 'number' || !Number.isInteger(operationTimeoutMs) || operationTimeoutMs <= 0) {
      throw new InvalidOptionError('operationTimeoutMs', 'must be a positive integer of milliseconds');
    }
    this.#timeoutMs = operationTimeoutMs;
    if (client !== undefined && (typeof client !== 'object' || client === null || typeof client.hset !== 'function')) {
      throw new InvalidOptionError('client', 'must be an ioredis client');
    }
    if (client !== undefined && (url !== undefined || redisOptions !== undefined)) {
      throw new InvalidOptionError('client', 'give either client or url/redisOptions, not both');
    }
    if (url !== undefined && (typeof url !== 'string' || !/^rediss?:\/\//.test(url))) {
      throw new InvalidOptionError('url', 'must be a redis:// or rediss:// URL');
    }
    if (redisOptions !== undefined && (typeof redisOptions !== 'object' || redisOptions === null)) {
      throw new InvalidOptionError('redisOptions', 'must be an ioredis options object');
    }
    if (typeof prefix !== 'string' || prefix.length === 0) {
      throw new InvalidOptionError('prefix', 'must be a non-empty string');
    }
    this.#log = logger === undefined ? undefined : validateLogger(logger).child({ component: 'redis-storage' });
    const lockOptions = resolveLeaseLockOptions(options);
    this.#encryptor = encryptionKey === undefined ? undefined : createKeyEncryptor(encryptionKey);
    this.#prefix = prefix;

    if (client) {
      this.#client = client;
      this.#ownsClient = false;
    } else {
      // Copy: never mutate the caller's options object. ioredis' own timeouts drop a command stuck in its
      // queue (a black-holed connection, or offline while reconnecting) instead of keeping it forever.
      // A command that failed (timed out) on a dropped connection is not sent again after reconnecting:
      // the caller was told it failed.
      const own: RedisOptions = {
        commandTimeout: operationTimeoutMs,
        connectTimeout: operationTimeoutMs,
        autoResendUnfulfilledCommands: false,
        ...redisOptions,
      };
      this.#client = url === undefined ? new Redis(own) : new Redis(url, own);
      this.#ownsClient = true;
      // Without a listener ioredis prints every reconnect error; commands still fail with their own errors.
      this.#client.on('error', (error: unknown) => this.#log?.warn({ err: error }, 'redis connection error'));
    }
    const clientKeyPrefix = (this.#client.options as { keyPrefix?: string } | undefined)?.keyPrefix ?? '';
    this.#dataPrefixInLua = `${clientKeyPrefix}${prefix}v:`;
    this.#locks = new LeaseLocks(this.#leaseBackend(), lockOptions, 'RedisStorage', this.#log);
  }

  async store(key: string, value: Uint8Array): Promise<void> {
    this.assertOpen();
    const k = validateKey(key);
    const stored = Buffer.from(this.#encryptor ? this.#encryptor.seal(k, value) : value);
    const folders = foldersAbove(k);
    const results = await this.#run('store', k, () => {
      const multi = this.#client.multi().hset(this.#dataKey(k), 'v', stored, 'm', String(Date.now())).zadd(this.#indexKey(), 0, k);
      return (folders.length > 0 ? multi.zadd(this.#foldersKey(), ...folders) : multi).exec();
    });
    const failed = results?.find(([error]) => error !== null);
    if (results === null || failed) {
      throw new StorageError(`RedisStorage: store ${k} failed`, { cause: failed?.[0] ?? undefined });
    }
  }

  async load(key: string): Promise<Buffer> {
    this.assertOpen();
    const k = validateKey(key);
    const value = await this.#run('load', k, () => this.#client.hgetBuffer(this.#dataKey(k), 'v'));
    if (value === null) throw new StorageNotFoundError(k);
    return this.#encryptor ? this.#encryptor.open(k, value) : value;
  }

  async delete(key: string): Promise<void> {
    this.assertOpen();
    const k = validateKey(key);
    const [start, end] = below(k);
    await this.#run('delete', k, () => this.#script(DELETE_SCRIPT, [this.#indexKey(), this.#foldersKey()], [this.#dataPrefixInLua, k, start, end]));
  }

  async exists(key: string): Promise<boolean> {
    this.assertOpen();
    const k = validateKey(key);
    if ((await this.#run('exists', k, () => this.#client.exists(this.#dataKey(k)))) === 1) return true;
    const [start, end] = below(k);
    const child = await this.#run('exists', k, () => this.#client.zrangebylex(this.#indexKey(), start, end, 'LIMIT', 0, 1));
    return child.length > 0;
  }

  async list(prefix: string, recursive: boolean): Promise<string[]> {
    this.assertOpen();
    const p = validatePrefix(prefix);
    const base = p === '' ? '' : `${p}/`;
    let [start, end] = p === '' ? ['-', '+'] : below(p);
    const found = new Set<string>();
    for (;;) {
      const page = await this.#run('list', p, () =>
        this.#client.zrangebylex(this.#indexKey(), start, end, 'LIMIT', 0, LIST_PAGE_SIZE),
      );
      for (const existing of page) addListed(found, p, existing.slice(base.length), recursive);
      if (page.length < LIST_PAGE_SIZE) break;
      const last = page[page.length - 1]!;
      const rest = last.slice(base.length);
      const slash = rest.indexOf('/');
      // Listing one level: skip the rest of a sub-folder in one jump instead of reading all of it.
      start = !recursive && slash !== -1 ? `[${base}${rest.slice(0, slash)}0` : `(${last}`;
    }
    if (found.size === 0) throw new StorageNotFoundError(p);
    return [...found].sort();
  }

  /** Folder names directly under `prefix`, read from the folder index (built first if this store has none yet). */
  async listFolders(prefix: string): Promise<string[]> {
    this.assertOpen();
    const p = validatePrefix(prefix);
    await this.#foldersReady();
    const base = p === '' ? '' : `${p}/`;
    let [start, end] = p === '' ? ['-', '+'] : below(p);
    const found: string[] = [];
    for (;;) {
      const page = await this.#run('list folders', p, () => this.#client.zrangebylex(this.#foldersKey(), start, end, 'LIMIT', 0, FOLDER_PAGE_SIZE));
      for (const folder of page) if (folder.indexOf('/', base.length) === -1) found.push(folder.slice(base.length));
      if (page.length < FOLDER_PAGE_SIZE) return found;
      start = `(${page[page.length - 1]}`;
    }
  }

  /**
   * Builds the folder index of a store written before it existed, once (any instance may: every step is
   * idempotent, and writes of this version keep the index up to date meanwhile). Writes by an older
   * version running beside this one are not indexed: such a name is not listed, so it is read by itself.
   */
  async #foldersReady(): Promise<void> {
    if (this.#foldersIndexed) return;
    const readyKey = `${this.#prefix}folders:ready`;
    if ((await this.#run('list folders', readyKey, () => this.#client.exists(readyKey))) === 1) {
      this.#foldersIndexed = true;
      return;
    }
    this.#log?.info({}, 'building the folder index of this store (once)');
    let start = '-';
    for (;;) {
      const [count, last] = (await this.#run('index folders', start, () =>
        this.#script(BACKFILL_FOLDERS_SCRIPT, [this.#indexKey(), this.#foldersKey()], [start, String(BACKFILL_PAGE_SIZE)]),
      )) as [number, string];
      if (count < BACKFILL_PAGE_SIZE) break;
      start = `(${last}`;
    }
    await this.#run('index folders', readyKey, () => this.#client.set(readyKey, '1'));
    this.#foldersIndexed = true;
  }

  async stat(key: string): Promise<KeyInfo> {
    this.assertOpen();
    const k = validateKey(key);
    const [[, size], [, modified]] = (await this.#run('stat', k, () =>
      this.#client.multi().hstrlen(this.#dataKey(k), 'v').hget(this.#dataKey(k), 'm').exec(),
    )) as [[Error | null, number], [Error | null, string | null]];
    if (modified !== null && modified !== undefined) {
      return { key: k, modified: new Date(Number(modified)), size, isTerminal: true };
    }
    const [start, end] = below(k);
    const children = await this.#run('stat', k, () => this.#client.zrangebylex(this.#indexKey(), start, end));
    if (children.length === 0) throw new StorageNotFoundError(k);
    const pipeline = this.#client.pipeline();
    for (const child of children) pipeline.hget(this.#dataKey(child), 'm');
    const times = (await this.#run('stat', k, () => pipeline.exec())) ?? [];
    const latest = Math.max(0, ...times.map(([, m]) => Number(m ?? 0)));
    return { key: k, modified: new Date(latest), size: 0, isTerminal: false };
  }

  lock(name: string, options?: LockOptions): Promise<void> {
    return this.#locks.lock(name, options);
  }

  tryLock(name: string): Promise<boolean> {
    return this.#locks.tryLock(name);
  }

  unlock(name: string): Promise<void> {
    return this.#locks.unlock(name);
  }

  /** Throws LockLostError unless this instance still holds `name` in Redis; call it right before a final write. */
  assertLockHeld(name: string): Promise<void> {
    return this.#locks.assertLockHeld(name);
  }

  /** Test aid: stop refreshing `name` without releasing it, as a crashed holder would. */
  async abandonLock(name: string): Promise<void> {
    this.#locks.abandon(name);
  }

  /**
   * Applies every write in one Lua script that first compares the lock's holder and fencing token:
   * all of them while this instance still holds `lock` under its grant, else none (LockLostError).
   */
  async writeFenced(lock: string, writes: readonly FencedWrite[]): Promise<void> {
    this.assertOpen();
    await this.#locks.writeFenced(lock, sealWrites(writes, this.#encryptor));
  }

  /** Releases held locks and stops their refresh; quits the Redis client only when this storage created it (close(): idempotent). */
  protected async onClose(): Promise<void> {
    await this.#locks.close();
    if (this.#ownsClient) {
      // QUIT waits for the connection; when the server is away, drop the reconnect loop at once instead.
      if (this.#client.status === 'ready') {
        await this.#client.quit().catch(() => this.#client.disconnect());
      } else {
        this.#client.disconnect();
      }
    }
  }

  #leaseBackend(): LeaseBackend {
    return {
      acquire: async (name, token, ttlMs) => {
        // Taking the lease and counting the grant happen in one script, so tokens follow the order of grants.
        const fence = Number(await this.#run('lock', name, () => this.#script(ACQUIRE_SCRIPT, [this.#lockKey(name), this.#fenceKey(name)], [token, String(Math.ceil(ttlMs))])));
        return fence > 0 ? fence : false;
      },
      refresh: async (name, token, ttlMs) =>
        (await this.#run('refresh lock', name, () => this.#script(REFRESH_SCRIPT, [this.#lockKey(name)], [token, String(Math.ceil(ttlMs))]))) === 1,
      release: async (name, token) => {
        await this.#run('unlock', name, () => this.#script(RELEASE_SCRIPT, [this.#lockKey(name)], [token]));
      },
      isHeld: async (name, token) => (await this.#run('check lock', name, () => this.#client.get(this.#lockKey(name)))) === token,
      writeFenced: async (name, token, fence, writes) => {
        const args: Array<string | Buffer> = [token, String(fence), this.#dataPrefixInLua, String(Date.now())];
        for (const w of writes) {
          if ('delete' in w) args.push('d', w.key, ...below(w.key));
          else args.push('s', w.key, Buffer.from(w.value));
        }
        const keys = [this.#lockKey(name), this.#fenceKey(name), this.#indexKey(), this.#foldersKey()];
        return (await this.#run('fenced write', name, () => this.#script(FENCED_WRITE_SCRIPT, keys, args))) === 1;
      },
    };
  }

  /** Runs a script by SHA, sending its text only the first time a server sees it. */
  async #script(script: string, keys: string[], args: Array<string | Buffer>): Promise<unknown> {
    const sha = scriptSha(script);
    try {
      return await this.#client.evalsha(sha, keys.length, ...keys, ...args);
    } catch (error) {
      if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error;
      return this.#client.eval(script, keys.length, ...keys, ...args);
    }
  }

  /** Runs one call, bounded by operationTimeoutMs (also for a caller's client, whose own timeouts we do not set). */
  async #run<T>(operation: string, key: string, fn: () => Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    try {
      const call = fn();
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${this.#timeoutMs} ms`)), this.#timeoutMs);
      });
      call.catch(() => undefined);
      return await Promise.race([call, timeout]);
    } catch (error) {
      // Ours or ioredis' commandTimeout: a connection that stopped answering stays open until TCP gives up,
      // and whatever it still delivers is out of step; reconnect our own client so later calls get a fresh one.
      const timedOut = error instanceof Error && /timed out/i.test(error.message);
      if (timedOut && this.#ownsClient && this.#client.status === 'ready') this.#client.disconnect(true);
      throw new StorageError(`RedisStorage: ${operation} ${key} failed: ${error instanceof Error ? error.message : String(error)}`, {
        cause: error,
      });
    } finally {
      clearTimeout(timer);
    }
  }

  #dataKey(key: string): string {
    return `${this.#prefix}v:${key}`;
  }

  #indexKey(): string {
    return `${this.#prefix}index`;
  }

  #foldersKey(): string {
    return `${this.#prefix}folders`;
  }

  #lockKey(name: string): string {
    return `${this.#prefix}lock:${name}`;
  }

  #fenceKey(name: string): string {
    return `${this.#prefix}fence:${name}`;
  }
}
