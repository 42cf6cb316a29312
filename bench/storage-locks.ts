/**
 * Locks across backends (issue #17): for FileStorage, Redis, PostgreSQL (and
 * etcd when its adapter is installed), in one run, each as a ratio to
 * FileStorage:
 *
 *   1. lock acquire + release latency: one holder, one name, back to back
 *      (p50 and p99 of every cycle);
 *   2. a 3-process fleet obtaining 100 names with the internal issuer: three
 *      CertKeepers on the same storage call manageSync() on the same names at
 *      once; time from "go" to the last process done. The certificates issued
 *      (cert_obtained events summed over the processes) must be exactly 100:
 *      each name once, whatever the backend.
 *
 * Every backend is opened through storageFromUrl() of the package as built
 * (dist/), with its default lock timings (what a user gets).
 *
 *   node --import tsx bench/storage-locks.ts [--locks 500] [--names 100] [--processes 3] [--rounds 2] [--lock-poll-ms N]
 *
 * Redis (CERTKEEPER_TEST_REDIS_URL, default redis://127.0.0.1:6379) and
 * PostgreSQL (CERTKEEPER_TEST_POSTGRES_URL, default postgres://postgres@127.0.0.1:5432/test)
 * are skipped with a note when unreachable. Data goes under a unique prefix /
 * schema / temporary directory per round and is removed at the end.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import pg from 'pg';
import { listCertificateNames, storageFromUrl } from 'certkeeper';
import { onJsonLines } from '../test/helpers/json-lines.js';
import { emitResult, loadAverage, median, onTermination, percentile, type ResultRow } from './lib/report.js';
import { startEtcd, type EtcdHandle } from './lib/etcd-server.js';

const { values: args } = parseArgs({
  options: {
    locks: { type: 'string', default: '500' },
    names: { type: 'string', default: '100' },
    processes: { type: 'string', default: '3' },
    rounds: { type: 'string', default: '2' },
    /** Poll interval of a busy lease lock in Redis/PostgreSQL/etcd (default: the adapters' own). */
    'lock-poll-ms': { type: 'string' },
  },
});
const LOCKS = Number(args.locks);
const NAMES = Number(args.names);
const PROCESSES = Number(args.processes);
const ROUNDS = Number(args.rounds);
const LOCK_POLL_MS = args['lock-poll-ms'] === undefined ? undefined : Number(args['lock-poll-ms']);
const REDIS_URL = process.env.CERTKEEPER_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const POSTGRES_URL = process.env.CERTKEEPER_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const WORKER = join(import.meta.dirname, 'lib', 'storage-fleet-worker.ts');
const runId = randomBytes(4).toString('hex');

interface Backend {
  name: string;
  /** A fresh, empty storage URL for one measurement, and how to remove what it held. */
  fresh(tag: string): Promise<{ url: string; cleanup: () => Promise<void> }>;
}

const live = new Set<ChildProcess>();
const cleanups: (() => Promise<void>)[] = [];
onTermination(async () => {
  for (const child of live) child.kill('SIGKILL');
  for (const cleanup of cleanups) await cleanup().catch(() => {});
});

async function reachable(name: string, probe: () => Promise<void>): Promise<boolean> {
  try {
    await probe();
    return true;
  } catch (error) {
    console.log(`# ${name} skipped: not reachable (${error instanceof Error ? error.message : String(error)})`);
    return false;
  }
}

async function backends(notes: string[]): Promise<Backend[]> {
  const list: Backend[] = [
    {
      name: 'FileStorage',
      fresh: async () => {
        const dir = await mkdtemp(join(tmpdir(), 'certkeeper-bench-locks-'));
        return { url: dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
      },
    },
  ];
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
      fresh: async (tag) => {
        const prefix = `certkeeper-bench-locks:${runId}:${tag}:`;
        return {
          url: `${REDIS_URL}/0?prefix=${encodeURIComponent(prefix)}`,
          cleanup: async () => {
            const admin = new Redis(REDIS_URL);
            let cursor = '0';
            do {
              const [next, keys] = await admin.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
              cursor = next;
              if (keys.length > 0) await admin.del(...keys);
            } while (cursor !== '0');
            await admin.quit();
          },
        };
      },
    });
  }
  const postgresUp = await reachable('PostgreSQL', async () => {
    const probe = new pg.Client({ connectionString: POSTGRES_URL, connectionTimeoutMillis: 2000 });
    await probe.connect();
    await probe.end();
  });
  if (postgresUp) {
    list.push({
      name: 'PostgreSQL',
      fresh: async (tag) => {
        const schema = `ck_bench_locks_${runId}_${tag}`;
        return {
          url: `${POSTGRES_URL}?schema=${schema}`,
          cleanup: async () => {
            const admin = new pg.Client({ connectionString: POSTGRES_URL });
            await admin.connect();
            await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
            await admin.end();
          },
        };
      },
    });
  }
  // etcd hook: measured as soon as @certkeeper/storage-etcd is installed (its own etcd on free ports).
  let etcdInstalled = false;
  try {
    createRequire(import.meta.url).resolve('@certkeeper/storage-etcd');
    etcdInstalled = true;
  } catch {
    notes.push('etcd: not measured, @certkeeper/storage-etcd is not installed in this checkout (the hook in bench/storage-locks.ts measures it once it is)');
  }
  if (etcdInstalled) {
    const etcd: EtcdHandle = await startEtcd();
    cleanups.push(() => etcd.stop());
    list.push({
      name: 'etcd',
      fresh: async (tag) => ({ url: `etcd://${etcd.clientAddress}/certkeeper-bench-locks/${runId}/${tag}/`, cleanup: async () => {} }),
    });
  }
  return list;
}

async function lockLatencies(url: string): Promise<number[]> {
  const storage = await storageFromUrl(url);
  try {
    const name = `bench_lock_${runId}`;
    for (let i = 0; i < 20; i++) {
      await storage.lock(name);
      await storage.unlock(name);
    }
    const samples: number[] = [];
    for (let i = 0; i < LOCKS; i++) {
      const start = performance.now();
      await storage.lock(name);
      await storage.unlock(name);
      samples.push(performance.now() - start);
    }
    return samples;
  } finally {
    await storage.close?.();
  }
}

interface FleetRun {
  ms: number;
  issued: number;
  failed: number;
  stored: number;
}

async function fleet(url: string, round: number): Promise<FleetRun> {
  const names = Array.from({ length: NAMES }, (_, i) => `n${i}.r${round}.locks-bench.test`);
  const workers = Array.from({ length: PROCESSES }, (_, i) => {
    const child = spawn(process.execPath, ['--import', 'tsx', WORKER], {
      env: { ...process.env, CERTKEEPER_BENCH_WORKER: JSON.stringify({ id: `w${i}`, url, names, lockPollMs: LOCK_POLL_MS }) },
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    live.add(child);
    child.once('exit', () => live.delete(child));
    const reports: Record<string, unknown>[] = [];
    const waiters: (() => void)[] = [];
    onJsonLines(
      child.stdout,
      (r) => {
        reports.push(r as Record<string, unknown>);
        for (const w of waiters.splice(0)) w();
      },
      (line) => process.stderr.write(`w${i}: ${line}\n`),
    );
    child.once('exit', () => {
      for (const w of waiters.splice(0)) w();
    });
    const waitFor = async (event: string): Promise<Record<string, unknown>> => {
      for (;;) {
        const found = reports.find((r) => r.event === event);
        if (found) return found;
        if (child.exitCode !== null) throw new Error(`fleet worker w${i} exited before "${event}"`);
        await new Promise<void>((resolve) => waiters.push(resolve));
      }
    };
    return { child, waitFor };
  });
  await Promise.all(workers.map((w) => w.waitFor('ready')));
  const start = performance.now();
  for (const w of workers) w.child.stdin?.write('go\n');
  const done = await Promise.all(workers.map((w) => w.waitFor('done')));
  const ms = performance.now() - start;
  await Promise.all(workers.map((w) => new Promise((resolve) => (w.child.exitCode !== null ? resolve(undefined) : w.child.once('exit', resolve)))));
  const storage = await storageFromUrl(url);
  let stored: number;
  try {
    stored = (await listCertificateNames(storage)).length;
  } finally {
    await storage.close?.();
  }
  return {
    ms,
    issued: done.reduce((sum, r) => sum + Number(r.obtained), 0),
    failed: done.reduce((sum, r) => sum + Number(r.failed), 0),
    stored,
  };
}

async function main(): Promise<void> {
  const notes: string[] = [];
  const loadBefore = loadAverage();
  const results: { name: string; locks: number[]; runs: FleetRun[] }[] = [];
  const list = await backends(notes);
  console.log(`# ${LOCKS} lock+unlock cycles; fleet: ${PROCESSES} processes x ${NAMES} names, ${ROUNDS} round(s), internal issuer`);
  // Rounds alternate over the backends, so load drifting during the run touches each of them alike.
  for (const backend of list) results.push({ name: backend.name, locks: [], runs: [] });
  for (let round = 0; round < ROUNDS; round++) {
    for (const [index, backend] of list.entries()) {
      const entry = results[index]!;
      const { url, cleanup } = await backend.fresh(`r${round}`);
      cleanups.push(cleanup);
      try {
        if (round === 0) entry.locks = await lockLatencies(url);
        const run = await fleet(url, round);
        entry.runs.push(run);
        console.log(`${backend.name.padEnd(12)} round ${round + 1}: fleet ${(run.ms / 1000).toFixed(2)} s, issued ${run.issued}, stored ${run.stored}, failed ${run.failed}`);
      } finally {
        await cleanup();
        cleanups.splice(cleanups.indexOf(cleanup), 1);
      }
    }
  }

  const rows: ResultRow[] = [];
  const file = results.find((r) => r.name === 'FileStorage');
  const fileP50 = file ? percentile(file.locks, 50) : Number.NaN;
  const fileP99 = file ? percentile(file.locks, 99) : Number.NaN;
  const fileFleet = file ? median(file.runs.map((r) => r.ms)) : Number.NaN;
  for (const r of results) {
    const p50 = percentile(r.locks, 50);
    const p99 = percentile(r.locks, 99);
    const fleetMs = median(r.runs.map((run) => run.ms));
    const issuedAll = r.runs.map((run) => run.issued);
    rows.push({
      metric: `${r.name}: lock acquire+release p50 / p99`,
      value: `${p50.toFixed(2)} / ${p99.toFixed(2)} ms`,
      baseline: r.name === 'FileStorage' ? '' : `FileStorage ${fileP50.toFixed(2)} / ${fileP99.toFixed(2)} ms`,
      ratio: r.name === 'FileStorage' ? '1' : `${(p50 / fileP50).toFixed(2)} / ${(p99 / fileP99).toFixed(2)}`,
    });
    rows.push({
      metric: `${r.name}: ${PROCESSES}-process fleet, ${NAMES} names (internal issuer)`,
      value: `${(fleetMs / 1000).toFixed(2)} s`,
      baseline: r.name === 'FileStorage' ? '' : `FileStorage ${(fileFleet / 1000).toFixed(2)} s`,
      ratio: r.name === 'FileStorage' ? '1' : (fleetMs / fileFleet).toFixed(2),
    });
    rows.push({
      metric: `${r.name}: certificates issued per round (must be ${NAMES})`,
      value: issuedAll.join(', '),
      target: `= ${NAMES}`,
      met: r.runs.every((run) => run.issued === NAMES && run.stored === NAMES && run.failed === 0),
    });
  }
  notes.push(`${LOCKS} uncontended lock+unlock cycles per backend after 20 warm-up cycles, one process, ${LOCK_POLL_MS === undefined ? 'default lock timings' : `lease locks polling every ${LOCK_POLL_MS} ms`}`);
  notes.push(`fleet: median of ${ROUNDS} round(s), rounds alternate over the backends; each round a fresh storage; time from "go" to the last of ${PROCESSES} processes done (process start not counted)`);
  notes.push(`load average before ${loadBefore}, after ${loadAverage()} (2 shared cores: noisy)`);
  emitResult({ bench: 'storage-locks', rows, notes });
}

try {
  await main();
} finally {
  // The etcd this bench started (and any storage left) is stopped here too, not only on a signal: the run ends by itself.
  for (const cleanup of cleanups.splice(0)) await cleanup().catch(() => {});
}
