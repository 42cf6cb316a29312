/**
 * PostgreSQL storage for certkeeper fleets: every instance that points at the
 * same database (and schema/tables) shares certificates, accounts, challenge
 * tokens and locks.
 *
 * Two tables, created on first use when missing:
 *   <tableName> (key text COLLATE "C" PRIMARY KEY, value bytea, modified timestamptz)
 *   <lockTable> (name text PRIMARY KEY, token text, expires_at timestamptz, fence bigserial)
 *
 * The "C" collation orders keys bytewise and lets the primary-key index serve
 * `LIKE 'prefix/%'` folder queries. Locks are leases in a table rather than
 * advisory locks: a session-level advisory lock belongs to one connection, and
 * with a pool the connection goes back to be reused by any other query (the
 * lock leaks to whoever gets it next, or is lost when the pool recycles it),
 * while a transaction-level one would pin a connection for the whole lock. All
 * lease times come from the database clock, so machines' clock skew does not
 * matter. Every grant of a lock takes the next value of the `fence` sequence:
 * a fenced write is one transaction that locks the lease row, compares holder
 * and fencing token, and applies every write, or none.
 */
import pg from 'pg';
import type { Pool, PoolConfig, QueryResultRow } from 'pg';
import {
  Closable,
  ClosedError,
  createKeyEncryptor,
  type FencedWrite,
  type FencedWriter,
  type FolderLister,
  InvalidOptionError,
  joinKey,
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
import { belowPattern, checkIdentifier, createTables, listFolderNames, listOneLevel, messageOf, quote, withClient } from './connection.js';

export const DEFAULT_TABLE_NAME = 'certkeeper_storage';
export const DEFAULT_LOCK_TABLE = 'certkeeper_locks';
/**
 * Longest one call (getting a connection and running its statements) may take before it fails with
 * ERR_STORAGE. A server behind a hung proxy, or gone, must not hold a name's lock and an order slot;
 * kept well under the default lock lease (10 s) so a refresh can fail and retry in time.
 */
export const DEFAULT_OPERATION_TIMEOUT_MS = 5_000;
/** Chunks of a folder listing read at once (each its own connection and server process). */
const FOLDER_LIST_PARALLEL = 3;

export interface PostgresStorageOptions extends LeaseLockOptions {
  /** Your own pg Pool; it is used as is and not ended by close(). */
  pool?: Pool | undefined;
  /** Connection string (`postgres://user@host:5432/db`) for a pool this storage creates and ends. */
  connectionString?: string | undefined;
  /** pg Pool options for a pool this storage creates (combined with connectionString when both are given). */
  poolConfig?: PoolConfig | undefined;
  /** Schema for both tables, created if missing (default: the connection's search_path, usually `public`). */
  schema?: string | undefined;
  /** Table holding the values (default `certkeeper_storage`). */
  tableName?: string | undefined;
  /** Table holding the locks (default `certkeeper_locks`). */
  lockTable?: string | undefined;
  /** Encrypts private keys and pending bundles at rest (AES-256-GCM): 32 bytes, or base64/hex of them. */
  encryptionKey?: Uint8Array | string | undefined;
  logger?: Logger | undefined;
  /** Every call fails with ERR_STORAGE after this many milliseconds (default 5 000); its connection is destroyed. */
  operationTimeoutMs?: number | undefined;
}

export class PostgresStorage extends Closable implements Storage, TryLocker, LockLeaseChecker, FencedWriter, FolderLister {
  readonly #pool: Pool;
  readonly #ownsPool: boolean;
  readonly #schema: string | undefined;
  readonly #table: string;
  /** The data table's own name (unquoted), to find its statistics. */
  readonly #tableName: string;
  readonly #lockTable: string;
  readonly #encryptor: KeyEncryptor | undefined;
  readonly #locks: LeaseLocks;
  readonly #log: Logger | undefined;
  readonly #timeoutMs: number;
  #ready: Promise<void> | undefined;

  constructor(options: PostgresStorageOptions = {}) {
    super('PostgresStorage');
    const {
      pool,
      connectionString,
      poolConfig,
      schema,
      tableName = DEFAULT_TABLE_NAME,
      lockTable = DEFAULT_LOCK_TABLE,
      encryptionKey,
      logger,
      operationTimeoutMs = DEFAULT_OPERATION_TIMEOUT_MS,
    } = options;
    if (typeof operationTimeoutMs !== 'number' || !Number.isInteger(operationTimeoutMs) || operationTimeoutMs <= 0) {
      throw new InvalidOptionError('operationTimeoutMs', 'must be a positive integer of milliseconds');
    }
    this.#timeoutMs = operationTimeoutMs;
    if (pool !== undefined && (typeof pool !== 'object' || pool === null || typeof pool.query !== 'function')) {
      throw new InvalidOptionError('pool', 'must be a pg Pool');
    }
    if (pool !== undefined && (connectionString !== undefined || poolConfig !== undefined)) {
      throw new InvalidOptionError('pool', 'give either pool or connectionString/poolConfig, not both');
    }
    if (connectionString !== undefined && typeof connectionString !== 'string') {
      throw new InvalidOptionError('connectionString', 'must be a string');
    }
    if (poolConfig !== undefined && (typeof poolConfig !== 'object' || poolConfig === null)) {
      throw new InvalidOptionError('poolConfig', 'must be a pg Pool options object');
    }
    this.#schema = schema === undefined ? undefined : checkIdentifier(schema, 'schema');
    const table = checkIdentifier(tableName, 'tableName');
    const locks = checkIdentifier(lockTable, 'lockTable');
    if (table === locks) throw new InvalidOptionError('lockTable', 'must differ from tableName');
    this.#tableName = table;
    this.#table = this.#qualified(table);
    this.#lockTable = this.#qualified(locks);
    this.#log = logger === undefined ? undefined : validateLogger(logger).child({ component: 'postgres-storage' });
    const lockOptions = resolveLeaseLockOptions(options);
    this.#encryptor = encryptionKey === undefined ? undefined : createKeyEncryptor(encryptionKey);

    if (pool) {
      this.#pool = pool;
      this.#ownsPool = false;
    } else {
      // Idle connections must not keep the process alive; the caller's object is not modified.
      this.#pool = new pg.Pool({
        allowExitOnIdle: true,
        connectionTimeoutMillis: operationTimeoutMs,
        ...poolConfig,
        ...(connectionString === undefined ? {} : { connectionString }),
      });
      this.#ownsPool = true;
      // An idle client's error is emitted on the pool; unhandled, it would crash the process.
      this.#pool.on('error', (error) => this.#log?.warn({ err: error }, 'postgres idle connection error'));
    }
    this.#locks = new LeaseLocks(this.#leaseBackend(), lockOptions, 'PostgresStorage', this.#log);
  }

  async store(key: string, value: Uint8Array): Promise<void> {
    const k = validateKey(key);
    const stored = Buffer.from(this.#encryptor ? this.#encryptor.seal(k, value) : value);
    await this.#query('store', k, this.#upsert(), [k, stored]);
  }

  async load(key: string): Promise<Buffer> {
    const k = validateKey(key);
    const { rows } = await this.#query<{ value: Buffer }>('load', k, `SELECT value FROM ${this.#table} WHERE key = $1`, [k]);
    const row = rows[0];
    if (!row) throw new StorageNotFoundError(k);
    return this.#encryptor ? this.#encryptor.open(k, row.value) : row.value;
  }

  async delete(key: string): Promise<void> {
    const k = validateKey(key);
    await this.#query('delete', k, `DELETE FROM ${this.#table} WHERE key = $1 OR key LIKE $2 ESCAPE '\\'`, [k, belowPattern(k)]);
  }

  async exists(key: string): Promise<boolean> {
    const k = validateKey(key);
    const { rows } = await this.#query<{ found: boolean }>(
      'exists',
      k,
      `SELECT EXISTS (SELECT 1 FROM ${this.#table} WHERE key = $1 OR key LIKE $2 ESCAPE '\\') AS found`,
      [k, belowPattern(k)],
    );
    return rows[0]?.found === true;
  }

  async list(prefix: string, recursive: boolean): Promise<string[]> {
    const p = validatePrefix(prefix);
    const pattern = p === '' ? '%' : belowPattern(p);
    const found = new Set<string>();
    if (recursive) {
      const { rows } = await this.#query<{ key: string }>('list', p, `SELECT key FROM ${this.#table} WHERE key LIKE $1 ESCAPE '\\'`, [pattern]);
      const skip = p === '' ? 0 : p.length + 1;
      for (const { key } of rows) {
        let path = p;
        for (const part of key.slice(skip).split('/')) {
          path = joinKey(path, part);
          found.add(path);
        }
      }
    } else {
      await listOneLevel((text, values) => this.#query<{ key: string }>('list', p, text, values), this.#table, p, found);
    }
    if (found.size === 0) throw new StorageNotFoundError(p);
    return [...found].sort();
  }

  /**
   * Folder names directly under `prefix`, deduplicated by the server a page at a time (listFolderNames), in
   * chunks cut at the table's histogram bounds (ANALYZE's sample of its keys), a few chunks at once.
   */
  async listFolders(prefix: string): Promise<string[]> {
    const p = validatePrefix(prefix);
    const splits = await this.#query<{ bounds: string[] | null }>(
      'list folders',
      p,
      `SELECT histogram_bounds::text::text[] AS bounds FROM pg_stats WHERE schemaname = coalesce($1, current_schema()) AND tablename = $2 AND attname = 'key'`,
      [this.#schema ?? null, this.#tableName],
    ).then(({ rows }) => rows[0]?.bounds ?? [], () => [] as string[]);
    return listFolderNames((text, values) => this.#query<{ n: number; last: string | null; folders: string | null }>('list folders', p, text, values), this.#table, p, splits, FOLDER_LIST_PARALLEL);
  }

  async stat(key: string): Promise<KeyInfo> {
    const k = validateKey(key);
    const { rows } = await this.#query<{ size: number; modified: Date }>(
      'stat',
      k,
      `SELECT octet_length(value) AS size, modified FROM ${this.#table} WHERE key = $1`,
      [k],
    );
    const row = rows[0];
    if (row) return { key: k, modified: row.modified, size: Number(row.size), isTerminal: true };
    const folder = await this.#query<{ modified: Date | null }>(
      'stat',
      k,
      `SELECT max(modified) AS modified FROM ${this.#table} WHERE key LIKE $1 ESCAPE '\\'`,
      [belowPattern(k)],
    );
    const latest = folder.rows[0]?.modified;
    if (!latest) throw new StorageNotFoundError(k);
    return { key: k, modified: latest, size: 0, isTerminal: false };
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

  /** Throws LockLostError unless this instance still holds an unexpired lease on `name`; call it right before a final write. */
  assertLockHeld(name: string): Promise<void> {
    return this.#locks.assertLockHeld(name);
  }

  /** Test aid: stop refreshing `name` without releasing it, as a crashed holder would. */
  async abandonLock(name: string): Promise<void> {
    this.#locks.abandon(name);
  }

  /**
   * Applies every write in one transaction that first locks the lease row and compares holder and
   * fencing token: all of them while this instance still holds `lock` under its grant, else none.
   */
  async writeFenced(lock: string, writes: readonly FencedWrite[]): Promise<void> {
    this.assertOpen();
    await this.#locks.writeFenced(lock, sealWrites(writes, this.#encryptor));
  }

  /** Releases held locks and stops their refresh; ends the pool only when this storage created it (close(): idempotent). */
  protected async onClose(): Promise<void> {
    await this.#locks.close();
    if (this.#ownsPool) await this.#pool.end();
  }

  #leaseBackend(): LeaseBackend {
    return {
      acquire: async (name, token, ttlMs) => {
        // Inserts a new lease, or takes over one whose holder stopped refreshing it; no row back means held by someone else.
        // EXCLUDED.fence is the sequence's next value, drawn for this attempt: a grant's token is greater than every earlier one's.
        const { rows } = await this.#query<{ fence: string }>(
          'lock',
          name,
          `INSERT INTO ${this.#lockTable} AS held (name, token, expires_at)
           VALUES ($1, $2, clock_timestamp() + $3::double precision * interval '1 millisecond')
           ON CONFLICT (name) DO UPDATE SET token = EXCLUDED.token, expires_at = EXCLUDED.expires_at, fence = EXCLUDED.fence
           WHERE held.expires_at <= clock_timestamp()
           RETURNING fence`,
          [name, token, ttlMs],
          true,
        );
        return rows[0] === undefined ? false : Number(rows[0].fence);
      },
      refresh: async (name, token, ttlMs) => {
        const { rowCount } = await this.#query(
          'refresh lock',
          name,
          `UPDATE ${this.#lockTable} SET expires_at = clock_timestamp() + $3::double precision * interval '1 millisecond'
           WHERE name = $1 AND token = $2 AND expires_at > clock_timestamp()`,
          [name, token, ttlMs],
          true,
        );
        return rowCount === 1;
      },
      release: async (name, token) => {
        await this.#query('unlock', name, `DELETE FROM ${this.#lockTable} WHERE name = $1 AND token = $2`, [name, token], true);
      },
      isHeld: async (name, token) => {
        const { rowCount } = await this.#query(
          'check lock',
          name,
          `SELECT 1 FROM ${this.#lockTable} WHERE name = $1 AND token = $2 AND expires_at > clock_timestamp()`,
          [name, token],
          true,
        );
        return rowCount === 1;
      },
      writeFenced: (name, token, fence, writes) => this.#fencedTransaction(name, token, fence, writes),
    };
  }

  async #fencedTransaction(name: string, token: string, fence: number, writes: readonly FencedWrite[]): Promise<boolean> {
    if (this.closed) throw new ClosedError('PostgresStorage');
    await this.#ensureTables();
    try {
      return await this.#withClient(async (client) => {
        await client.query('BEGIN');
        try {
          // FOR UPDATE: a takeover's upsert of this row waits until we commit, so no grant lands in between.
          const held = await client.query(
            `SELECT 1 FROM ${this.#lockTable} WHERE name = $1 AND token = $2 AND fence = $3 AND expires_at > clock_timestamp() FOR UPDATE`,
            [name, token, fence],
          );
          if (held.rowCount !== 1) {
            await client.query('ROLLBACK');
            return false;
          }
          for (const w of writes) {
            if ('delete' in w) await client.query(`DELETE FROM ${this.#table} WHERE key = $1 OR key LIKE $2 ESCAPE '\\'`, [w.key, belowPattern(w.key)]);
            else await client.query(this.#upsert(), [w.key, Buffer.from(w.value)]);
          }
          await client.query('COMMIT');
          return true;
        } catch (error) {
          await client.query('ROLLBACK').catch(() => undefined);
          throw error;
        }
      });
    } catch (error) {
      throw new StorageError(`PostgresStorage: fenced write under ${name} failed: ${messageOf(error)}`, { cause: error });
    }
  }

  #upsert(): string {
    return `INSERT INTO ${this.#table} (key, value, modified) VALUES ($1, $2, clock_timestamp())
       ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, modified = EXCLUDED.modified`;
  }

  #withClient<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    return withClient(this.#pool, this.#timeoutMs, fn);
  }

  /** Runs one parameterised statement; wraps failures in StorageError naming the operation and key (never the values). */
  async #query<R extends QueryResultRow = QueryResultRow>(
    operation: string,
    key: string,
    text: string,
    values: unknown[],
    lockOperation = false,
  ): Promise<pg.QueryResult<R>> {
    // Lock release must still work during close(), so only data operations are refused.
    if (this.closed && !lockOperation) throw new ClosedError('PostgresStorage');
    await this.#ensureTables();
    try {
      return await this.#withClient((client) => client.query<R>(text, values));
    } catch (error) {
      throw new StorageError(`PostgresStorage: ${operation} ${key} failed: ${messageOf(error)}`, { cause: error });
    }
  }

  #ensureTables(): Promise<void> {
    this.#ready ??= this.#createTables().catch((error: unknown) => {
      this.#ready = undefined; // try again on the next call (the server may come back)
      throw error instanceof StorageError ? error : new StorageError(`PostgresStorage: creating tables failed: ${messageOf(error)}`, { cause: error });
    });
    return this.#ready;
  }

  #createTables(): Promise<void> {
    return this.#withClient((client) => createTables(client, { schema: this.#schema === undefined ? undefined : quote(this.#schema), table: this.#table, lockTable: this.#lockTable }));
  }

  #qualified(name: string): string {
    return this.#schema === undefined ? quote(name) : `${quote(this.#schema)}.${quote(name)}`;
  }
}
