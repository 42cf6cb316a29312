/**
 * Bulk loader for fleet-scale stores (issue 20): a million fabricated
 * certificate sets written straight into Redis or PostgreSQL in the exact
 * layout the adapters read, in minutes rather than the hours that a million
 * `saveCertificateSet` calls (each parsing the set, four writes, a delete)
 * would take.
 *
 * The material: fabricate.ts's bench CA and its one shared leaf key; each
 * name gets its own leaf, really signed (ECDSA P-256, about 30 µs each), so
 * every stored certificate is distinct and verifiable. The sidecar is built
 * by the real certificateMetaFrom from facts known without parsing (dates read
 * by the cheap DER walk leafValidity), and a sample is checked against
 * buildCertificateMeta's full parse before anything is written.
 *
 * Only the three ordinary values are written (`.key`, `.crt`, `.json`): a
 * completed saveCertificateSet leaves exactly those (its `.pending` is deleted).
 *
 *   Redis:      <prefix>v:<key> hash { v, m } and the <prefix>index sorted set, pipelined.
 *   PostgreSQL: <schema>.certkeeper_storage (key, value, modified) with COPY ... FORMAT binary
 *               through psql; the primary key is added after the rows (faster than
 *               maintaining it row by row). The lock table is created as the adapter would.
 */
import { spawn } from 'node:child_process';
import type { Writable } from 'node:stream';
import { Redis } from 'ioredis';
import pg from 'pg';
import { buildCertificateMeta, certificateMetaFrom, serializeMeta } from '../../src/storage/certificate-meta.js';
import { leafValidity } from '../../src/storage/leaf-validity.js';
import { certificateKeys } from '../../src/storage/layout.js';
import { BENCH_ISSUER_KEY, benchName, createBenchCa, leafChainPem, type BenchCa } from './fabricate.js';

export interface GeneratedSet {
  name: string;
  /** [storage key, value] for .key, .crt, .json. */
  entries: [string, Buffer][];
}

/** Generates sets for names benchName(first .. first+count-1), one at a time (no array of a million). */
export function* generateSets(count: number, first = 0, ca: BenchCa = createBenchCa()): Generator<GeneratedSet> {
  const keyValue = Buffer.from(ca.leafKeyPem);
  for (let i = first; i < first + count; i++) {
    const name = benchName(i);
    const certPem = leafChainPem(ca, name, i + 1);
    const { notBefore, notAfter } = leafValidity(certPem);
    const meta = certificateMetaFrom({
      certPem,
      keyPem: ca.leafKeyPem,
      issuerKey: BENCH_ISSUER_KEY,
      names: [name],
      notBefore,
      notAfter,
      // What node:crypto reports for fabricate.ts's fixed-width serial.
      serialNumber: (0x10000000 + i + 1).toString(16).toUpperCase(),
      keyType: 'ecdsa-p256',
    });
    const keys = certificateKeys(BENCH_ISSUER_KEY, name);
    yield { name, entries: [[keys.key, keyValue], [keys.cert, Buffer.from(certPem)], [keys.meta, serializeMeta(meta)]] };
  }
}

/** Sanity check before a long load: the fast sidecar equals the one a full parse builds. */
export function checkGeneratedSample(): void {
  const ca = createBenchCa();
  const [set] = [...generateSets(1, 12_345, ca)];
  if (!set) throw new Error('no sample');
  const byName = new Map(set.entries.map(([k, v]) => [k.slice(k.lastIndexOf('.') + 1), v.toString('utf8')]));
  const fast = JSON.parse(byName.get('json') as string) as Record<string, unknown>;
  const full = buildCertificateMeta({ certPem: byName.get('crt') as string, keyPem: byName.get('key') as string, issuerKey: BENCH_ISSUER_KEY, names: [set.name] });
  const a = JSON.stringify(fast);
  const b = JSON.stringify(JSON.parse(JSON.stringify(full)));
  if (a !== b) throw new Error(`bulk-load sidecar differs from buildCertificateMeta:\n${a}\n${b}`);
}

export interface LoadProgress {
  (done: number, elapsedMs: number): void;
}

// ---- Redis ----

/** Pipelined HSET per value and one ZADD per batch; `batch` names per round trip. */
export async function bulkLoadRedis(url: string, prefix: string, count: number, options: { batch?: number; onProgress?: LoadProgress } = {}): Promise<number> {
  const client = new Redis(url, { lazyConnect: true, enableAutoPipelining: false });
  await client.connect();
  const t0 = performance.now();
  const batch = options.batch ?? 500;
  const mtime = String(Date.now());
  let done = 0;
  let pipeline = client.pipeline();
  let members: (string | number)[] = [];
  let inBatch = 0;
  // Two batches in flight: generation of the next overlaps the round trip of the last.
  let inFlight: Promise<unknown> = Promise.resolve();
  const flush = async (): Promise<void> => {
    pipeline.zadd(`${prefix}index`, ...members);
    const sent = pipeline.exec().then((results) => {
      const failed = results?.find(([error]) => error !== null);
      if (failed) throw failed[0];
    });
    await inFlight;
    inFlight = sent;
    pipeline = client.pipeline();
    members = [];
    inBatch = 0;
  };
  try {
    for (const set of generateSets(count)) {
      for (const [key, value] of set.entries) {
        pipeline.hset(`${prefix}v:${key}`, 'v', value, 'm', mtime);
        members.push(0, key);
      }
      done++;
      if (++inBatch >= batch) {
        await flush();
        if (done % 50_000 === 0) options.onProgress?.(done, performance.now() - t0);
      }
    }
    if (inBatch > 0) await flush();
    await inFlight;
  } finally {
    client.disconnect();
  }
  return performance.now() - t0;
}

/** Deletes every key under `prefix` (SCAN + UNLINK: only this prefix, never FLUSHDB on a shared Redis). */
export async function cleanupRedis(url: string, prefix: string): Promise<number> {
  const client = new Redis(url);
  let removed = 0;
  try {
    let cursor = '0';
    do {
      const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 5000);
      cursor = next;
      if (keys.length > 0) removed += await client.unlink(...keys);
    } while (cursor !== '0');
  } finally {
    client.disconnect();
  }
  return removed;
}

// ---- PostgreSQL ----

const PG_EPOCH_US = BigInt(Date.UTC(2000, 0, 1)) * 1000n;

/** One COPY binary row: key text, value bytea, modified timestamptz. */
function copyRow(key: string, value: Buffer, modifiedUs: bigint): Buffer {
  const k = Buffer.from(key);
  const row = Buffer.allocUnsafe(2 + 4 + k.length + 4 + value.length + 4 + 8);
  let at = row.writeInt16BE(3, 0);
  at = row.writeInt32BE(k.length, at);
  at += k.copy(row, at);
  at = row.writeInt32BE(value.length, at);
  at += value.copy(row, at);
  at = row.writeInt32BE(8, at);
  row.writeBigInt64BE(modifiedUs, at);
  return row;
}

function write(stream: Writable, chunk: Buffer): Promise<void> {
  return stream.write(chunk) ? Promise.resolve() : new Promise((resolve) => stream.once('drain', () => resolve()));
}

export const PG_TABLE = 'certkeeper_storage';
export const PG_LOCK_TABLE = 'certkeeper_locks';

/** Creates `schema` (dropping an earlier one), COPYs the sets in, then adds the primary key and analyzes. */
export async function bulkLoadPostgres(url: string, schema: string, count: number, options: { onProgress?: LoadProgress } = {}): Promise<{ ms: number; copyMs: number; indexMs: number }> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const t0 = performance.now();
  try {
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await client.query(`CREATE SCHEMA "${schema}"`);
    // The adapter's DDL (storage-adapters/postgres/src/connection.ts), the primary key added after COPY.
    await client.query(`CREATE TABLE "${schema}".${PG_TABLE} (key text COLLATE "C" NOT NULL, value bytea NOT NULL, modified timestamptz NOT NULL DEFAULT clock_timestamp())`);
    await client.query(`CREATE TABLE "${schema}".${PG_LOCK_TABLE} (name text PRIMARY KEY, token text NOT NULL, expires_at timestamptz NOT NULL, fence bigserial NOT NULL)`);
    const psql = spawn('psql', [url, '-v', 'ON_ERROR_STOP=1', '-q', '-c', `COPY "${schema}".${PG_TABLE} (key, value, modified) FROM STDIN WITH (FORMAT binary)`], {
      stdio: ['pipe', 'inherit', 'inherit'],
    });
    const exited = new Promise<number | null>((resolve) => psql.once('exit', (code) => resolve(code)));
    const stdin = psql.stdin as Writable;
    await write(stdin, Buffer.concat([Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1'), Buffer.alloc(8)]));
    const modified = BigInt(Date.now()) * 1000n - PG_EPOCH_US;
    let done = 0;
    let chunk: Buffer[] = [];
    for (const set of generateSets(count)) {
      for (const [key, value] of set.entries) chunk.push(copyRow(key, value, modified));
      if (++done % 200 === 0) {
        await write(stdin, Buffer.concat(chunk));
        chunk = [];
      }
      if (done % 50_000 === 0) options.onProgress?.(done, performance.now() - t0);
    }
    chunk.push(Buffer.from([0xff, 0xff]));
    await write(stdin, Buffer.concat(chunk));
    stdin.end();
    const code = await exited;
    if (code !== 0) throw new Error(`psql COPY exited with ${code}`);
    const copyMs = performance.now() - t0;
    await client.query(`ALTER TABLE "${schema}".${PG_TABLE} ADD PRIMARY KEY (key)`);
    // VACUUM sets the visibility map, so listings are index-only scans (autovacuum would, later, on a real table).
    await client.query(`VACUUM (ANALYZE) "${schema}".${PG_TABLE}`);
    const ms = performance.now() - t0;
    return { ms, copyMs, indexMs: ms - copyMs };
  } finally {
    await client.end();
  }
}

export async function cleanupPostgres(url: string, schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  } finally {
    await client.end();
  }
}
