/**
 * Storage throughput: store and load of certificate sets (the real
 * saveCertificateSet / loadCertificateSet, i.e. `.pending` + three parts, then
 * verification on load) and lock/unlock cycles, for FileStorage, Redis and
 * PostgreSQL in one run. Prints operations per second and the ratio to
 * FileStorage. Every phase stops at its time budget and reports what it did,
 * so the run is bounded even on a slow machine.
 *
 *   node --import tsx bench/storage.ts [--sets 10000] [--locks 1000] [--concurrency 16] [--budget-seconds 60]
 *
 * Redis (CERTKEEPER_TEST_REDIS_URL, default redis://127.0.0.1:6379) and
 * PostgreSQL (CERTKEEPER_TEST_POSTGRES_URL, default postgres://postgres@127.0.0.1:5432/test)
 * are skipped with a note when unreachable. Data goes under a unique prefix /
 * schema / temporary directory and is removed at the end.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import pg from 'pg';
// The package as installed (dist/), one copy with the adapters below; buildCertificateMeta is internal and pure.
import { FileStorage, loadCertificateSet, saveCertificateSet, type CertificateSet, type Storage } from 'certkeeper';
import { buildCertificateMeta } from '../src/storage/certificates.js';
import { PostgresStorage } from '@certkeeper/storage-postgres';
import { RedisStorage } from '@certkeeper/storage-redis';
import { createTestLeaf } from '../test/helpers/tls-certs.js';

const { values: args } = parseArgs({
  options: {
    sets: { type: 'string', default: '10000' },
    locks: { type: 'string', default: '1000' },
    concurrency: { type: 'string', default: '16' },
    'budget-seconds': { type: 'string', default: '60' },
  },
});
const SETS = Number(args.sets);
const LOCKS = Number(args.locks);
const CONCURRENCY = Number(args.concurrency);
const BUDGET_MS = Number(args['budget-seconds']) * 1000;
const REDIS_URL = process.env.CERTKEEPER_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const POSTGRES_URL = process.env.CERTKEEPER_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const ISSUER = 'bench-ca';
const runId = randomBytes(4).toString('hex');

interface PhaseResult {
  done: number;
  ms: number;
}

interface Backend {
  name: string;
  open(): Promise<Storage>;
  cleanup(): Promise<void>;
}

/** Runs `count` operations with `concurrency` workers until done or the budget runs out. */
async function phase(count: number, concurrency: number, op: (i: number) => Promise<void>): Promise<PhaseResult> {
  const start = performance.now();
  let next = 0;
  let done = 0;
  const worker = async (): Promise<void> => {
    while (next < count && performance.now() - start < BUDGET_MS) {
      await op(next++);
      done++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { done, ms: performance.now() - start };
}

async function reachable(name: string, probe: () => Promise<void>): Promise<boolean> {
  try {
    await probe();
    return true;
  } catch (error) {
    console.log(`# ${name} skipped: not reachable (${error instanceof Error ? error.message : String(error)})`);
    return false;
  }
}

async function backends(): Promise<Backend[]> {
  const list: Backend[] = [];
  const root = await mkdtemp(join(tmpdir(), 'certkeeper-bench-'));
  list.push({ name: 'FileStorage', open: async () => new FileStorage({ root }), cleanup: () => rm(root, { recursive: true, force: true }) });

  const prefix = `certkeeper-bench:${runId}:`;
  const redisUp = await reachable('Redis', async () => {
    const probe = new Redis(REDIS_URL, { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
    probe.on('error', () => {});
    try {
      await probe.connect();
    } finally {
      probe.disconnect();
    }
  });
  if (redisUp) {
    list.push({
      name: 'Redis',
      open: async () => new RedisStorage({ url: REDIS_URL, prefix, lockPollMs: 5 }),
      cleanup: async () => {
        const admin = new Redis(REDIS_URL);
        let cursor = '0';
        do {
          const [nextCursor, keys] = await admin.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
          cursor = nextCursor;
          if (keys.length > 0) await admin.del(...keys);
        } while (cursor !== '0');
        await admin.quit();
      },
    });
  }

  const schema = `ck_bench_${runId}`;
  const postgresUp = await reachable('PostgreSQL', async () => {
    const probe = new pg.Client({ connectionString: POSTGRES_URL, connectionTimeoutMillis: 2000 });
    await probe.connect();
    await probe.end();
  });
  if (postgresUp) {
    list.push({
      name: 'PostgreSQL',
      open: async () => new PostgresStorage({ connectionString: POSTGRES_URL, schema, lockPollMs: 5, poolConfig: { max: CONCURRENCY } }),
      cleanup: async () => {
        const admin = new pg.Client({ connectionString: POSTGRES_URL });
        await admin.connect();
        await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
        await admin.end();
      },
    });
  }
  return list;
}

async function main(): Promise<void> {
  // One real certificate and key for every set: the sets differ by name, so storage, not key generation, is measured.
  const leaf = await createTestLeaf(undefined, { names: ['bench.example.test'] });
  const setFor = (i: number): CertificateSet => ({
    certPem: leaf.chainPem,
    keyPem: leaf.keyPem,
    meta: buildCertificateMeta({ certPem: leaf.chainPem, keyPem: leaf.keyPem, issuerKey: ISSUER, names: [`n${i}.bench.test`] }),
  });
  const sets = Array.from({ length: SETS }, (_, i) => setFor(i));

  console.log(`# ${SETS} certificate sets, ${LOCKS} lock/unlock cycles, concurrency ${CONCURRENCY}, budget ${BUDGET_MS / 1000} s per phase`);
  const rows: { name: string; store: PhaseResult; load: PhaseResult; lock: PhaseResult }[] = [];
  for (const backend of await backends()) {
    const storage = await backend.open();
    try {
      const store = await phase(SETS, CONCURRENCY, async (i) => {
        await saveCertificateSet(storage, sets[i]!);
      });
      const load = await phase(store.done, CONCURRENCY, async (i) => {
        await loadCertificateSet(storage, ISSUER, `n${i}.bench.test`);
      });
      // One holder, one lock name, back to back: the cost of a round trip through the backend's lock.
      const lock = await phase(LOCKS, 1, async () => {
        await storage.lock(`bench_${runId}`);
        await storage.unlock(`bench_${runId}`);
      });
      rows.push({ name: backend.name, store, load, lock });
    } finally {
      await storage.close?.();
      await backend.cleanup();
    }
  }

  const rate = (r: PhaseResult): number => (r.done / r.ms) * 1000;
  const file = rows.find((r) => r.name === 'FileStorage');
  const cell = (r: PhaseResult, base: PhaseResult | undefined, total: number): string => {
    const partial = r.done < total ? ` (${r.done}/${total}, budget)` : '';
    const ratio = base ? ` x${(rate(r) / rate(base)).toFixed(2)}` : '';
    return `${rate(r).toFixed(0).padStart(7)}/s${ratio}${partial}`;
  };
  console.log(`\n${'backend'.padEnd(12)} ${'store sets'.padEnd(38)} ${'load sets'.padEnd(38)} lock+unlock`);
  for (const r of rows) {
    console.log(
      `${r.name.padEnd(12)} ${cell(r.store, file?.store, SETS).padEnd(38)} ${cell(r.load, file?.load, r.store.done).padEnd(38)} ${cell(r.lock, file?.lock, LOCKS)}`,
    );
  }
  console.log('\n(ratios are to FileStorage in the same run; one process, loopback servers)');
}

await main();
