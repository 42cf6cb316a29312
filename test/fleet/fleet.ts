/**
 * Test side of the fleet tests: starts worker processes (fixtures/worker.ts),
 * talks to them over stdin/stdout JSON lines, and makes the shared storage
 * for each kind (with an inspector instance for the test's own reads and a
 * cleanup). Every worker is killed by stopAll() and by a process 'exit' hook.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { onJsonLines } from '../helpers/json-lines.js';
import { Redis } from 'ioredis';
import pg from 'pg';
import { EtcdStorage } from '@certkeeper/storage-etcd';
import { etcdSkipReason, startEtcd } from '../../storage-adapters/etcd/test/server.js';
import { PostgresStorage } from '@certkeeper/storage-postgres';
import { POSTGRES_URL, postgresSkipReason } from '../../storage-adapters/postgres/test/server.js';
import { RedisStorage } from '@certkeeper/storage-redis';
import { REDIS_URL, deleteByPrefix, redisSkipReason } from '../../storage-adapters/redis/test/server.js';
// The package as installed (dist/, like the adapters and the workers), so errors and storages are one copy.
import { FileStorage, listCertificateNames, loadCertificateSet, StorageNotFoundError, type CertificateSet, type Storage } from 'certkeeper';
import type { Command, PausePoint, StorageConfig, WorkerConfig } from './fixtures/worker.js';
import { exitOnSignals } from '../helpers/exit-on-signal.js';

const WORKER_SCRIPT = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'worker.ts');
/** Generous: a wait this long means something is broken, not slow. */
const DEFAULT_WAIT_MS = 90_000;

export type StorageKind = StorageConfig['kind'];

export interface WorkerReport {
  event: string;
  worker: string;
  req?: number;
  [field: string]: unknown;
}

const live = new Set<ChildProcess>();
exitOnSignals();
process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

export class Worker {
  readonly id: string;
  readonly child: ChildProcess;
  readonly reports: WorkerReport[] = [];
  port = 0;
  #stderr = '';
  #nextReq = 1;
  #waiters = new Set<() => void>();
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(config: WorkerConfig) {
    this.id = config.id;
    this.child = spawn(process.execPath, ['--import', 'tsx', WORKER_SCRIPT], {
      env: { ...process.env, CERTKEEPER_FLEET_WORKER: JSON.stringify(config) },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    live.add(this.child);
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        live.delete(this.child);
        this.#notify();
        resolve({ code, signal });
      });
    });
    onJsonLines(
      this.child.stdout,
      (report) => {
        this.reports.push(report as WorkerReport);
        this.#notify();
      },
      (line) => {
        this.#stderr += `(stdout) ${line}\n`;
      },
    );
    this.child.stderr?.setEncoding('utf8').on('data', (text: string) => {
      this.#stderr += text;
      if (process.env.CERTKEEPER_TEST_LOG) process.stderr.write(text);
    });
    // A worker killed mid-write must not crash the test with EPIPE.
    this.child.stdin?.on('error', () => {});
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Waits for the first report matching `match` (earlier ones count). */
  async waitFor(match: (report: WorkerReport) => boolean, what: string, timeoutMs = DEFAULT_WAIT_MS): Promise<WorkerReport> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.reports.find(match);
      if (found) return found;
      if (!this.alive) throw new Error(`worker ${this.id} exited before ${what}:\n${this.#stderr}`);
      const remaining = deadline - Date.now();
      if (remaining <= 0) throw new Error(`worker ${this.id}: no ${what} after ${timeoutMs} ms; reports: ${JSON.stringify(this.reports)}\n${this.#stderr}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, remaining);
        const waiters = this.#waiters;
        function done(): void {
          clearTimeout(timer);
          waiters.delete(done);
          resolve();
        }
        waiters.add(done);
      });
    }
  }

  async ready(): Promise<void> {
    const report = await this.waitFor((r) => r.event === 'ready', 'ready report');
    this.port = report.port as number;
  }

  /** Waits until the worker stops at its pause point; fails at once if its order failed before getting there. */
  async paused(): Promise<WorkerReport> {
    const report = await this.waitFor((r) => r.event === 'paused' || r.event === 'failed', 'pause point');
    if (report.event !== 'paused') throw new Error(`worker ${this.id} failed before its pause point: ${JSON.stringify(report)}`);
    return report;
  }

  /** Sends a command and returns its request number (the reply carries it). */
  send(command: DistributiveOmit<Command, 'req'>): number {
    const req = this.#nextReq++;
    this.child.stdin?.write(`${JSON.stringify({ ...command, req })}\n`);
    return req;
  }

  reply(req: number, timeoutMs = DEFAULT_WAIT_MS): Promise<WorkerReport> {
    return this.waitFor((r) => r.req === req && r.event !== 'continued', `reply to request ${req}`, timeoutMs);
  }

  async request(command: DistributiveOmit<Command, 'req'>): Promise<WorkerReport> {
    return this.reply(this.send(command));
  }

  /** SIGTERM, then waits for the exit (SIGKILL after 15 s). */
  async stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.alive) {
      this.child.kill('SIGCONT');
      this.child.kill('SIGTERM');
      const timer = setTimeout(() => this.child.kill('SIGKILL'), 15_000);
      const result = await this.exited;
      clearTimeout(timer);
      return result;
    }
    return this.exited;
  }

  diagnostics(): string {
    return this.#stderr;
  }

  #notify(): void {
    for (const wake of [...this.#waiters]) wake();
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

export async function startWorkers(configs: WorkerConfig[]): Promise<Worker[]> {
  const workers = configs.map((c) => new Worker(c));
  try {
    await Promise.all(workers.map((w) => w.ready()));
  } catch (error) {
    await Promise.all(workers.map((w) => w.stop()));
    throw error;
  }
  return workers;
}

export async function stopAll(workers: readonly Worker[]): Promise<void> {
  await Promise.all(workers.map((w) => w.stop()));
}

// ----------------------------------------------------------------- storage

/** Shared storage of one kind for one test: what workers are told, an instance for the test's own reads, and cleanup. */
export interface SharedStorage {
  kind: StorageKind;
  config: StorageConfig;
  inspector: Storage;
  cleanup(): Promise<void>;
}

const run = `${process.pid}_${randomBytes(3).toString('hex')}`;
let counter = 0;

/** `leaseMs`: the lock TTL (Redis, PostgreSQL, etcd) or stale period (files, at least 2 s). */
export async function sharedStorage(kind: StorageKind, leaseMs: number): Promise<SharedStorage> {
  const tag = `${run}_${++counter}`;
  switch (kind) {
    case 'redis': {
      const prefix = `ck_fleet:${tag}:`;
      const inspector = new RedisStorage({ url: REDIS_URL, prefix });
      return {
        kind,
        config: { kind, url: REDIS_URL, prefix, lockTtlMs: leaseMs },
        inspector,
        async cleanup() {
          await inspector.close();
          const client = new Redis(REDIS_URL);
          try {
            await deleteByPrefix(client, prefix);
          } finally {
            client.disconnect();
          }
        },
      };
    }
    case 'postgres': {
      const schema = `ck_fleet_${tag}`;
      const inspector = new PostgresStorage({ connectionString: POSTGRES_URL, schema });
      return {
        kind,
        config: { kind, url: POSTGRES_URL, schema, lockTtlMs: leaseMs },
        inspector,
        async cleanup() {
          await inspector.close();
          const client = new pg.Client({ connectionString: POSTGRES_URL });
          await client.connect();
          try {
            await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
          } finally {
            await client.end();
          }
        },
      };
    }
    case 'etcd': {
      // An etcd of this storage's own, on free ports, stopped (and its data removed) by cleanup.
      const etcd = await startEtcd();
      const prefix = `ck_fleet/${tag}/`;
      const inspector = new EtcdStorage({ endpoints: etcd.endpoint, prefix });
      return {
        kind,
        config: { kind, endpoint: etcd.endpoint, prefix, lockTtlMs: leaseMs },
        inspector,
        async cleanup() {
          await inspector.close();
          await etcd.close();
        },
      };
    }
    case 'file': {
      const dir = await mkdtemp(join(tmpdir(), 'certkeeper-fleet-'));
      const lockStaleMs = Math.max(2_000, leaseMs);
      const inspector = new FileStorage({ root: dir, lockStaleMs });
      return {
        kind,
        config: { kind, dir, lockStaleMs },
        inspector,
        async cleanup() {
          await inspector.close?.();
          await rm(dir, { recursive: true, force: true });
        },
      };
    }
  }
}

/** Skip reason for a storage kind's server (printed; throws on CI), false when usable. */
export async function storageSkipReason(kind: StorageKind): Promise<string | false> {
  if (kind === 'redis') return redisSkipReason();
  if (kind === 'postgres') return postgresSkipReason();
  if (kind === 'etcd') return etcdSkipReason();
  return false;
}

/**
 * Loads every stored certificate set with the full verification of
 * loadCertificateSet (throws on anything corrupt) and lists leftover
 * write-ahead `.pending` copies.
 */
export async function loadAllSets(storage: Storage): Promise<{ sets: CertificateSet[]; pending: string[] }> {
  const sets: CertificateSet[] = [];
  for (const ref of await listCertificateNames(storage)) sets.push(await loadCertificateSet(storage, ref.issuerKey, ref.name));
  let keys: string[] = [];
  try {
    keys = await storage.list('certificates', true);
  } catch (error) {
    if (!(error instanceof StorageNotFoundError)) throw error;
  }
  return { sets, pending: keys.filter((k) => k.endsWith('.pending')) };
}

/** Worker config with the Pebble settings filled in. */
export function workerConfig(
  id: string,
  storage: SharedStorage,
  pebble: { directoryUrl: string; pebbleCaPem: string },
  extra: { challengePort?: number; pauseAt?: PausePoint; fakeClockStart?: number } = {},
): WorkerConfig {
  return { id, storage: storage.config, directoryUrl: pebble.directoryUrl, pebbleCaPem: pebble.pebbleCaPem, ...extra };
}
