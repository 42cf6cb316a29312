/**
 * etcd storage for certkeeper fleets: every instance that points at the same
 * etcd cluster (and prefix) shares certificates, accounts, challenge tokens and
 * locks, and a lock holder's final writes are fenced by its grant.
 *
 * Layout under the prefix (default `certkeeper/`):
 *   <prefix>v/<key>      the value (bytes)
 *   <prefix>m/<key>      its modification time (epoch ms, decimal), written in the same transaction
 *   <prefix>lock/<name>  the holder's random token, attached to the holder's lease
 *
 * etcd orders keys bytewise, so a folder `a/b` is the range [v/a/b/, v/a/b0):
 * listing reads ranges, never the whole keyspace.
 */
import {
  ClosedError,
  createKeyEncryptor,
  InvalidOptionError,
  joinKey,
  type KeyEncryptor,
  type KeyInfo,
  type LeaseLockOptions,
  LeaseLocks,
  type LockLeaseChecker,
  LockLostError,
  type LockOptions,
  type Logger,
  resolveLeaseLockOptions,
  type Storage,
  StorageError,
  StorageNotFoundError,
  type TryLocker,
  validateKey,
  validateLockName,
  validateLogger,
  validatePrefix,
} from 'certkeeper/storage';
import { noop } from 'cockatiel';
import { Etcd3, type IOptions, type IRequestOp } from 'etcd3';
import { DEFAULT_ETCD_ENDPOINT, DEFAULT_ETCD_PREFIX, DEFAULT_OPERATION_TIMEOUT_MS, LIST_PAGE_SIZE } from './defaults.js';
import { deleteRanges, type FencedWrite, type FencedWriter, planWrites, type KeyRange } from './fencing.js';
import { EtcdLeases } from './leases.js';

export { DEFAULT_ETCD_ENDPOINT, DEFAULT_ETCD_PREFIX, DEFAULT_OPERATION_TIMEOUT_MS } from './defaults.js';
export type { FencedWrite, FencedWriter } from './fencing.js';

export interface EtcdStorageOptions extends LeaseLockOptions {
  /** Your own etcd3 client; it is used as is and not closed by close(). Excludes `endpoints`/`etcdOptions`. */
  client?: Etcd3 | undefined;
  /** Client URLs of the cluster (`http://host:2379`, or `https://` with `etcdOptions.credentials`), default http://127.0.0.1:2379. */
  endpoints?: string | readonly string[] | undefined;
  /** etcd3 options for a client this storage creates (auth, TLS credentials, gRPC options); `hosts` comes from `endpoints`. */
  etcdOptions?: Omit<IOptions, 'hosts'> | undefined;
  /** Prefix of every etcd key this storage uses (default `certkeeper/`). Instances sharing data must use the same one. */
  prefix?: string | undefined;
  /** Encrypts private keys and pending bundles at rest (AES-256-GCM): 32 bytes, or base64/hex of them. */
  encryptionKey?: Uint8Array | string | undefined;
  logger?: Logger | undefined;
  /** Every etcd call fails with ERR_STORAGE after this many milliseconds (default 5 000). */
  operationTimeoutMs?: number | undefined;
}

interface CallOptions {
  deadline: Date;
}

export class EtcdStorage implements Storage, TryLocker, LockLeaseChecker, FencedWriter {
  readonly #client: Etcd3;
  readonly #ownsClient: boolean;
  readonly #prefix: string;
  readonly #encryptor: KeyEncryptor | undefined;
  readonly #leases: EtcdLeases;
  readonly #locks: LeaseLocks;
  readonly #timeoutMs: number;
  #closing: Promise<void> | undefined;

  constructor(options: EtcdStorageOptions = {}) {
    const { client, endpoints, etcdOptions, prefix = DEFAULT_ETCD_PREFIX, encryptionKey, logger, operationTimeoutMs = DEFAULT_OPERATION_TIMEOUT_MS } = options;
    if (typeof operationTimeoutMs !== 'number' || !Number.isInteger(operationTimeoutMs) || operationTimeoutMs <= 0) {
      throw new InvalidOptionError('operationTimeoutMs', 'must be a positive integer of milliseconds');
    }
    if (client !== undefined && !(client instanceof Etcd3)) throw new InvalidOptionError('client', 'must be an etcd3 client (new Etcd3(...))');
    if (client !== undefined && (endpoints !== undefined || etcdOptions !== undefined)) {
      throw new InvalidOptionError('client', 'give either client or endpoints/etcdOptions, not both');
    }
    const hosts = endpoints === undefined ? [DEFAULT_ETCD_ENDPOINT] : typeof endpoints === 'string' ? [endpoints] : [...endpoints];
    if (hosts.length === 0 || !hosts.every((h) => typeof h === 'string' && /^https?:\/\/[^/]+\/?$/.test(h))) {
      throw new InvalidOptionError('endpoints', 'must be one or more http:// or https:// client URLs (host:port)');
    }
    if (etcdOptions !== undefined && (typeof etcdOptions !== 'object' || etcdOptions === null)) {
      throw new InvalidOptionError('etcdOptions', 'must be an etcd3 options object');
    }
    if (typeof prefix !== 'string' || prefix.length === 0) throw new InvalidOptionError('prefix', 'must be a non-empty string');
    const lockOptions = resolveLeaseLockOptions(options);
    // etcd leases count whole seconds, and a cluster grants no less than about a second anyway.
    if (lockOptions.lockTtlMs < 1000) throw new InvalidOptionError('lockTtlMs', 'must be at least 1000 ms: etcd leases count whole seconds');
    const log = logger === undefined ? undefined : validateLogger(logger).child({ component: 'etcd-storage' });
    this.#timeoutMs = operationTimeoutMs;
    this.#encryptor = encryptionKey === undefined ? undefined : createKeyEncryptor(encryptionKey);
    this.#prefix = prefix;
    if (client) {
      this.#client = client;
      this.#ownsClient = false;
    } else {
      // Copy: never mutate the caller's options. The dial is bounded like every call. etcd3's default circuit
      // breaker refuses every call to a host for 5 s after three failures in a row (three slow calls on a busy
      // machine are enough): a lease could then not be kept alive although etcd answers. Each call here has
      // its own timeout and the locks retry by themselves, so no breaker; etcd3's retry on another host stays.
      this.#client = new Etcd3({ dialTimeout: operationTimeoutMs, faultHandling: { host: () => noop }, ...etcdOptions, hosts });
      this.#ownsClient = true;
    }
    this.#leases = new EtcdLeases({ client: this.#client, run: (op, key, fn) => this.#run(op, key, fn), lockKey: (name) => this.#key('lock', name) });
    this.#locks = new LeaseLocks(this.#leases.backend(), lockOptions, 'EtcdStorage', log);
  }

  async store(key: string, value: Uint8Array): Promise<void> {
    this.#assertOpen();
    const k = validateKey(key);
    await this.#run('store', k, (o) => this.#client.kv.txn({ success: this.#putOps(k, value) }, o));
  }

  async load(key: string): Promise<Buffer> {
    this.#assertOpen();
    const k = validateKey(key);
    const found = await this.#run('load', k, (o) => this.#client.kv.range({ key: this.#key('v', k) }, o));
    const kv = found.kvs[0];
    if (kv === undefined) throw new StorageNotFoundError(k);
    return this.#encryptor ? this.#encryptor.open(k, kv.value) : kv.value;
  }

  async delete(key: string): Promise<void> {
    this.#assertOpen();
    const k = validateKey(key);
    await this.#run('delete', k, (o) => this.#client.kv.txn({ success: this.#deleteOps(deleteRanges(k, [])) }, o));
  }

  async exists(key: string): Promise<boolean> {
    this.#assertOpen();
    const k = validateKey(key);
    const result = await this.#run('exists', k, (o) =>
      this.#client.kv.txn(
        {
          success: [
            { request_range: { key: this.#key('v', k), count_only: true } },
            { request_range: { ...this.#range('v', { start: `${k}/`, end: `${k}0` }), count_only: true } },
          ],
        },
        o,
      ),
    );
    return result.responses.some((r) => Number(r.response_range.count) > 0);
  }

  async list(prefix: string, recursive: boolean): Promise<string[]> {
    this.#assertOpen();
    const p = validatePrefix(prefix);
    const base = p === '' ? '' : `${p}/`;
    const end = this.#key('v', p === '' ? '' : `${p}0`);
    const endRange = p === '' ? incremented(this.#key('v', '').subarray(0, -1)) : end;
    let start = this.#key('v', base);
    const found = new Set<string>();
    for (;;) {
      const from = start;
      const page = await this.#run('list', p, (o) =>
        this.#client.kv.range({ key: from, range_end: endRange, keys_only: true, limit: LIST_PAGE_SIZE }, o),
      );
      const valuePrefix = this.#key('v', '').length;
      let last = '';
      for (const kv of page.kvs) {
        last = kv.key.subarray(valuePrefix).toString();
        addListed(found, p, last.slice(base.length), recursive);
      }
      if (!page.more || page.kvs.length === 0) break;
      const rest = last.slice(base.length);
      const slash = rest.indexOf('/');
      // Listing one level: skip the rest of a sub-folder in one jump instead of reading all of it.
      start = this.#key('v', !recursive && slash !== -1 ? `${base}${rest.slice(0, slash)}0` : `${last}\u0000`);
    }
    if (found.size === 0) throw new StorageNotFoundError(p);
    return [...found].sort();
  }

  async stat(key: string): Promise<KeyInfo> {
    this.#assertOpen();
    const k = validateKey(key);
    const result = await this.#run('stat', k, (o) =>
      this.#client.kv.txn(
        {
          success: [
            { request_range: { key: this.#key('v', k) } },
            { request_range: { key: this.#key('m', k) } },
            { request_range: this.#range('m', { start: `${k}/`, end: `${k}0` }) },
          ],
        },
        o,
      ),
    );
    const [value, modified, below] = result.responses.map((r) => r.response_range.kvs);
    const kv = value?.[0];
    if (kv !== undefined) {
      const size = this.#encryptor ? this.#encryptor.open(k, kv.value).length : kv.value.length;
      return { key: k, modified: new Date(Number(modified?.[0]?.value.toString() ?? 0)), size, isTerminal: true };
    }
    if (below === undefined || below.length === 0) throw new StorageNotFoundError(k);
    const latest = Math.max(0, ...below.map((m) => Number(m.value.toString())));
    return { key: k, modified: new Date(latest), size: 0, isTerminal: false };
  }

  /**
   * Applies `writes` in one etcd transaction that first compares the lock key's
   * create revision with this instance's grant: a holder whose lease was lost
   * (paused, cut off) writes nothing, even if a check just before said it held the lock.
   */
  async writeFenced(lock: string, writes: readonly FencedWrite[]): Promise<void> {
    this.#assertOpen();
    const name = validateLockName(lock);
    const plan = planWrites(writes, validateKey);
    const grant = this.#leases.current(name);
    if (grant === undefined) throw new LockLostError(name);
    const success = [...plan.deletes.flatMap((k) => this.#deleteOps(deleteRanges(k, plan.puts.keys())))];
    for (const [k, value] of plan.puts) success.push(...this.#putOps(k, value));
    const result = await this.#run('fenced write', name, (o) =>
      this.#client.kv.txn(
        { compare: [{ key: this.#key('lock', name), target: 'Create', result: 'Equal', create_revision: grant.revision }], success },
        o,
      ),
    );
    if (!result.succeeded) throw new LockLostError(name, `Lock "${name}" was taken over: the fenced write was refused`);
  }

  lock(name: string, options?: LockOptions): Promise<void> {
    return this.#locks.lock(name, options);
  }

  tryLock(name: string): Promise<boolean> {
    return this.#locks.tryLock(name);
  }

  /** Revokes this instance's lease of `name` (deleting the lock key with it); a no-op for a lock it does not hold. */
  unlock(name: string): Promise<void> {
    return this.#locks.unlock(name);
  }

  /** Throws LockLostError unless this instance still holds `name` in etcd under its grant. */
  assertLockHeld(name: string): Promise<void> {
    return this.#locks.assertLockHeld(name);
  }

  /** Test aid: stop keeping `name`'s lease alive without revoking it, as a crashed holder would. */
  async abandonLock(name: string): Promise<void> {
    this.#locks.abandon(name);
  }

  /** Revokes the leases of held locks and stops keeping them alive; closes the client only when this storage created it. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      await this.#locks.close();
      if (this.#ownsClient) this.#client.close();
    })();
    return this.#closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #putOps(k: string, value: Uint8Array): IRequestOp[] {
    const stored = Buffer.from(this.#encryptor ? this.#encryptor.seal(k, value) : value);
    return [
      { request_put: { key: this.#key('v', k), value: stored } },
      { request_put: { key: this.#key('m', k), value: Buffer.from(String(Date.now())) } },
    ];
  }

  #deleteOps(ranges: readonly KeyRange[]): IRequestOp[] {
    return (['v', 'm'] as const).flatMap((space) => ranges.map((range) => ({ request_delete_range: this.#range(space, range) })));
  }

  #range(space: 'v' | 'm', range: KeyRange): { key: Buffer; range_end?: Buffer } {
    const key = this.#key(space, range.start);
    return range.end === undefined ? { key } : { key, range_end: this.#key(space, range.end) };
  }

  #key(space: 'v' | 'm' | 'lock', key: string): Buffer {
    return Buffer.from(`${this.#prefix}${space}/${key}`);
  }

  /** Runs one call, bounded by operationTimeoutMs (a gRPC deadline, and a timer for what happens around it). */
  async #run<T>(operation: string, key: string, fn: (options: CallOptions) => Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    try {
      const call = fn({ deadline: new Date(Date.now() + this.#timeoutMs) });
      call.catch(() => undefined);
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${this.#timeoutMs} ms`)), this.#timeoutMs);
      });
      return await Promise.race([call, timeout]);
    } catch (error) {
      throw new StorageError(`EtcdStorage: ${operation} ${key} failed: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
    } finally {
      clearTimeout(timer);
    }
  }

  #assertOpen(): void {
    if (this.#closing) throw new ClosedError('EtcdStorage');
  }
}

/** The smallest key above every key that starts with `prefix` (etcd's "prefix + 1" range end). */
function incremented(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  end[end.length - 1] = (end[end.length - 1] ?? 0) + 1;
  return end;
}

/** Adds what `relative` (a key below the listed prefix) contributes to a listing: its first component, or every level. */
function addListed(found: Set<string>, prefix: string, relative: string, recursive: boolean): void {
  const parts = relative.split('/');
  if (!recursive) {
    found.add(joinKey(prefix, parts[0] ?? ''));
    return;
  }
  let path = prefix;
  for (const part of parts) {
    path = joinKey(path, part);
    found.add(path);
  }
}
