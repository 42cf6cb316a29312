/**
 * PostgresStorage's connection handling (every call bounded in time) and its
 * tables, created on first use.
 */
import type pg from 'pg';
import type { Pool } from 'pg';
import { InvalidOptionError, joinKey } from 'certkeeper/storage';

/** Serialises table creation between processes starting at once (CREATE TABLE IF NOT EXISTS can race). */
const SCHEMA_LOCK_ID = 0x63_6b_73_74; // "ckst"
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

/**
 * Runs `fn` on a pooled connection, all of it (waiting for a connection included) bounded by
 * operationTimeoutMs. On a timeout the connection is destroyed, never handed out again with a query
 * stuck on it, and a connection that arrives too late goes straight back to the pool.
 */
export async function withClient<T>(pool: Pool, timeoutMs: number, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  let timedOut = false;
  let client: pg.PoolClient | undefined;
  let timer: NodeJS.Timeout | undefined;
  const work = (async () => {
    const c = await pool.connect();
    if (timedOut) {
      c.release();
      throw new Error('connection arrived after the timeout');
    }
    client = c;
    // A connection dying while checked out emits 'error' on the client (pool.query listens the same way);
    // unheard, it would crash the process. The query itself rejects too.
    const onError = (): void => undefined;
    c.on('error', onError);
    try {
      const result = await fn(c);
      c.removeListener('error', onError);
      c.release();
      return result;
    } catch (error) {
      c.removeListener('error', onError);
      // Destroyed on any failure: after a network error the connection is unusable, and a SQL error is rare.
      if (!timedOut) c.release(error instanceof Error ? error : true);
      throw error;
    }
  })();
  work.catch(() => undefined);
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      timedOut = true;
      // Destroys it (release with an error): the query stuck on it then rejects, and the catch above lets it be.
      client?.release(new Error('operation timed out'));
      reject(new Error(`timed out after ${timeoutMs} ms`));
    }, timeoutMs);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export interface TableNames {
  /** Quoted schema to create, or undefined for the search_path. */
  schema: string | undefined;
  /** Quoted, schema-qualified names. */
  table: string;
  lockTable: string;
}

/**
 * Creates the tables when missing, and the lock table's `fence` column when
 * an older version made the table without it. Skips DDL when all exist, so a
 * role without CREATE rights can use tables an administrator made.
 */
export async function createTables(client: pg.PoolClient, names: TableNames): Promise<void> {
  const existing = await client.query<{ data: string | null; locks: string | null; fenced: boolean }>(
    `SELECT to_regclass($1) AS data, to_regclass($2) AS locks,
       EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass($2) AND attname = 'fence' AND NOT attisdropped) AS fenced`,
    [names.table, names.lockTable],
  );
  const row = existing.rows[0];
  if (row?.data && row.locks && row.fenced) return;
  try {
    await client.query('BEGIN');
    await client.query('SELECT pg_advisory_xact_lock($1)', [SCHEMA_LOCK_ID]);
    if (names.schema !== undefined) await client.query(`CREATE SCHEMA IF NOT EXISTS ${names.schema}`);
    await client.query(
      `CREATE TABLE IF NOT EXISTS ${names.table} (
         key text COLLATE "C" PRIMARY KEY,
         value bytea NOT NULL,
         modified timestamptz NOT NULL DEFAULT clock_timestamp())`,
    );
    await client.query(
      `CREATE TABLE IF NOT EXISTS ${names.lockTable} (
         name text PRIMARY KEY,
         token text NOT NULL,
         expires_at timestamptz NOT NULL,
         fence bigserial NOT NULL)`,
    );
    await client.query(`ALTER TABLE ${names.lockTable} ADD COLUMN IF NOT EXISTS fence bigserial NOT NULL`);
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {});
    throw error;
  }
}

/** Identifiers cannot be parameters, so they are restricted to plain names and then quoted. */
export function checkIdentifier(value: unknown, option: string): string {
  if (typeof value !== 'string' || !IDENTIFIER.test(value)) {
    throw new InvalidOptionError(option, 'must be a SQL identifier: a letter or _, then letters, digits or _ (at most 63)');
  }
  return value;
}

export function quote(identifier: string): string {
  return `"${identifier}"`;
}

/** LIKE pattern matching every key below `key`, with the key's own `%`, `_` and `\` taken literally. */
export function belowPattern(key: string): string {
  return `${key.replace(/[\\%_]/g, (c) => `\\${c}`)}/%`;
}

export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Keys read per query when listing one level: every query stays short (the timeout is per call) however big the folder. */
export const LIST_PAGE_SIZE = 10_000;

/**
 * The children one level below `prefix`, a page of keys at a time in key order ("C" collation), skipping
 * the rest of a sub-folder once its name is known. One DISTINCT over a million-name folder (3 keys each)
 * took longer than the 5 s operation timeout; a page is an index range scan of at most LIST_PAGE_SIZE keys.
 */
export async function listOneLevel(
  query: (text: string, values: unknown[]) => Promise<{ rows: { key: string }[] }>,
  table: string,
  prefix: string,
  found: Set<string>,
): Promise<void> {
  const base = prefix === '' ? '' : `${prefix}/`;
  // '0' follows '/' bytewise: keys below `prefix` are exactly those in [base, prefix + '0').
  const upper = prefix === '' ? undefined : `${prefix}0`;
  let from = base;
  let inclusive = true;
  for (;;) {
    const text = `SELECT key FROM ${table} WHERE key ${inclusive ? '>=' : '>'} $1${upper === undefined ? '' : ' AND key < $3'} ORDER BY key LIMIT $2`;
    const { rows } = await query(text, upper === undefined ? [from, LIST_PAGE_SIZE] : [from, LIST_PAGE_SIZE, upper]);
    let child = '';
    let folder = false;
    for (const { key } of rows) {
      const rest = key.slice(base.length);
      const slash = rest.indexOf('/');
      child = slash === -1 ? rest : rest.slice(0, slash);
      folder = slash !== -1;
      found.add(joinKey(prefix, child));
    }
    if (rows.length < LIST_PAGE_SIZE) return;
    if (folder) {
      from = `${base}${child}0`;
      inclusive = true;
    } else {
      from = (rows[rows.length - 1] as { key: string }).key;
      inclusive = false;
    }
  }
}

/**
 * The folder names directly under `prefix`, a page of keys at a time like listOneLevel, but the server answers
 * each page with its distinct folder names only (one row: count, last key, names joined by newlines, which no
 * key contains): a million certificate folders of 3 keys each arrive as a million short names, not 3M paths.
 * `splits` (keys spread over the table, e.g. its histogram) cut the range into chunks at folder boundaries, read
 * `parallel` at a time: the pages are the server's work, and chunks let it use more than one core for it.
 */
export async function listFolderNames(
  query: (text: string, values: unknown[]) => Promise<{ rows: { n: number; last: string | null; folders: string | null }[] }>,
  table: string,
  prefix: string,
  splits: readonly string[] = [],
  parallel = 1,
): Promise<string[]> {
  const base = prefix === '' ? '' : `${prefix}/`;
  const upper = prefix === '' ? undefined : `${prefix}0`;
  // A split at `base + name` never cuts a folder (its keys all start with `base + name + '/'`). Only printable
  // ASCII splits: for them JavaScript's order is the "C" collation's, so the chunks cover the range exactly.
  const starts = new Set<string>();
  for (const key of splits) {
    if (!/^[\x20-\x7e]*$/.test(key) || !key.startsWith(base) || (upper !== undefined && key >= upper)) continue;
    const rest = key.slice(base.length);
    const slash = rest.indexOf('/');
    const name = slash === -1 ? rest : rest.slice(0, slash);
    if (name !== '') starts.add(`${base}${name}`);
  }
  const bounds = [base, ...[...starts].sort()];
  const chunks: string[][] = bounds.map(() => []);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < bounds.length) {
      const i = next++;
      await listFolderRange(query, table, base, bounds[i] as string, bounds[i + 1] ?? upper, chunks[i] as string[]);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(parallel, bounds.length)) }, worker));
  if (chunks.length === 1) return chunks[0] as string[];
  const found: string[] = [];
  for (const chunk of chunks) for (const folder of chunk) found.push(folder);
  return found;
}

async function listFolderRange(
  query: (text: string, values: unknown[]) => Promise<{ rows: { n: number; last: string | null; folders: string | null }[] }>,
  table: string,
  base: string,
  start: string,
  upper: string | undefined,
  found: string[],
): Promise<void> {
  let from = start;
  let inclusive = true;
  for (;;) {
    // Keys come in key order, so a folder's keys are adjacent: a name differing from the row before is a new
    // folder (lag() of the folder names over the same order, no sort); the offset counts characters, as substr() does.
    const text = `SELECT count(*)::int AS n, max(key) AS last, string_agg(f, E'\\n') FILTER (WHERE slash AND f IS DISTINCT FROM prev) AS folders
      FROM (SELECT key, f, slash, lag(CASE WHEN slash THEN f END) OVER (ORDER BY key) AS prev
        FROM (SELECT key, split_part(substr(key, $3::int), '/', 1) AS f, strpos(substr(key, $3::int), '/') > 0 AS slash
          FROM ${table} WHERE key ${inclusive ? '>=' : '>'} $1${upper === undefined ? '' : ' AND key < $4'} ORDER BY key LIMIT $2) page) ordered`;
    const offset = [...base].length + 1;
    const { rows } = await query(text, upper === undefined ? [from, LIST_PAGE_SIZE, offset] : [from, LIST_PAGE_SIZE, offset, upper]);
    const row = rows[0];
    if (row?.folders) for (const folder of row.folders.split('\n')) if (found[found.length - 1] !== folder) found.push(folder);
    if (!row || row.n < LIST_PAGE_SIZE || row.last === null) return;
    const rest = row.last.slice(base.length);
    const slash = rest.indexOf('/');
    if (slash !== -1) {
      from = `${base}${rest.slice(0, slash)}0`;
      inclusive = true;
    } else {
      from = row.last;
      inclusive = false;
    }
  }
}
