/**
 * Start-up (issue 3): 100,000 managed names already in FileStorage. A fresh
 * process creates a keeper and calls `manageSync` with every name; measured:
 * the time until it resolves (and no certificate is obtained: no
 * `cert_obtaining` event, so no CA is asked), the process's RSS afterwards,
 * and the handshake latency for a name whose certificate must be loaded from
 * storage on that handshake (lazy), against the same names once cached.
 *
 * Baseline in the same run: a process that only reads and parses every
 * sidecar (`<name>.json`) with the same concurrency: the floor for this storage
 * layout. Keeper and floor processes alternate over the runs; medians.
 *
 *   node --import tsx bench/startup.ts [--names 100000] [--runs 3] [--lazy 20] [--profile]
 *
 * --profile: one extra keeper run under --cpu-prof; prints the functions with
 * the most self time during start-up (profile kept under bench/.cache/profiles/).
 *
 * Targets: manageSync ≤ 3 s; RSS ≤ 300 MB.
 */
import { readFile, rm } from 'node:fs/promises';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { DEFAULT_EAGER_LOAD_LIMIT, DEFAULT_LOAD_CONCURRENCY } from '../src/manager/keeper.js';
import { certificateKeys } from '../src/storage/layout.js';
import { BENCH_CACHE_DIR, BENCH_ISSUER_KEY, benchName, cachedStore } from './lib/fabricate.js';
import { benchKeeper } from './lib/keeper.js';
import { emitResult, loadAverage, median, onTermination } from './lib/report.js';
import { serveCommands, startServerProcess, type ServerProcess } from './lib/server-process.js';
import { handshakeOnce } from './lib/tls-load.js';
import { summarizeProfile } from './lib/profile.js';

const { values: args } = parseArgs({
  options: {
    keeper: { type: 'string' },
    floor: { type: 'string' },
    names: { type: 'string', default: '100000' },
    runs: { type: 'string', default: '3' },
    lazy: { type: 'string', default: '20' },
    profile: { type: 'boolean', default: false },
  },
});
const NAMES = Number(args.names);
const STORE_LABEL = 'names-100000';
const STORE_SIZE = 100_000;
const MiB = 2 ** 20;
const names = (): string[] => Array.from({ length: NAMES }, (_, i) => benchName(i));

// ---- child: the keeper ----

async function runKeeper(root: string): Promise<void> {
  const processStartToHere = performance.now();
  const all = names();
  const t0 = performance.now();
  const keeper = benchKeeper(root);
  let obtaining = 0;
  keeper.on('cert_obtaining', () => obtaining++);
  const server = https.createServer(keeper.tlsOptions({ minVersion: 'TLSv1.3' }), (_req, res) => res.end('ok'));
  await keeper.manageSync(all);
  const manageMs = performance.now() - t0;
  const sinceProcessStart = performance.now();
  const rss = process.memoryUsage().rss;
  // With --expose-gc (the parent passes it): how much of that RSS is garbage not yet collected.
  (globalThis as { gc?: () => void }).gc?.();
  const { rss: rssAfterGc, heapUsed } = process.memoryUsage();
  server.on('tlsClientError', () => {});
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  serveCommands(
    {
      stats: () => ({ stats: keeper.cacheStats(), rss: process.memoryUsage().rss, obtaining, valid: keeper.status(all[all.length - 1] as string).state }),
    },
    async () => {
      server.close();
      await keeper.close();
    },
  );
  process.send?.({ port: (server.address() as AddressInfo).port, manageMs, sinceProcessStart, processStartToHere, rss, rssAfterGc, heapUsed, obtaining, stats: keeper.cacheStats() });
}

// ---- child: the floor (read and parse every sidecar, nothing else) ----

async function runFloor(root: string): Promise<void> {
  const all = names();
  const t0 = performance.now();
  let next = 0;
  let parsed = 0;
  const worker = async (): Promise<void> => {
    while (next < all.length) {
      const name = all[next++] as string;
      const meta = JSON.parse(await readFile(join(root, ...certificateKeys(BENCH_ISSUER_KEY, name).meta.split('/')), 'utf8')) as { notAfter: string };
      if (Date.parse(meta.notAfter) > Date.now()) parsed++;
    }
  };
  await Promise.all(Array.from({ length: DEFAULT_LOAD_CONCURRENCY }, worker));
  const ms = performance.now() - t0;
  serveCommands({}, async () => {});
  process.send?.({ ms, parsed, rss: process.memoryUsage().rss });
}

// ---- parent ----

interface KeeperReady {
  port: number;
  manageMs: number;
  sinceProcessStart: number;
  processStartToHere: number;
  rss: number;
  rssAfterGc: number;
  heapUsed: number;
  obtaining: number;
  stats: Record<string, number>;
}

async function runParent(): Promise<void> {
  const runs = Number(args.runs);
  const lazyCount = Number(args.lazy);
  const loadBefore = loadAverage();
  const root = await cachedStore(STORE_LABEL, STORE_SIZE);
  const script = fileURLToPath(import.meta.url);
  let current: ServerProcess | undefined;
  onTermination(() => current?.stop());
  const manage: number[] = [];
  const fromStart: number[] = [];
  const rss: number[] = [];
  const rssAfterLazy: number[] = [];
  const rssGc: number[] = [];
  const heap: number[] = [];
  const floor: number[] = [];
  const lazy: number[] = [];
  const cached: number[] = [];
  const notes: string[] = [];
  let obtaining = 0;
  let failedHandshakes = 0;
  for (let run = 0; run < runs; run++) {
    current = await startServerProcess(script, ['--keeper', root, '--names', String(NAMES)], 300_000, ['--expose-gc']);
    const ready = current.ready as unknown as KeeperReady;
    rssGc.push(ready.rssAfterGc);
    heap.push(ready.heapUsed);
    manage.push(ready.manageMs);
    fromStart.push(ready.sinceProcessStart);
    rss.push(ready.rss);
    obtaining += ready.obtaining;
    // Names far apart, none loaded yet: each handshake loads its set from storage and builds the context.
    const lazyNames = Array.from({ length: lazyCount }, (_, i) => benchName(Math.floor(((i + 0.5) * NAMES) / lazyCount)));
    for (const [list, pass] of [[lazy, 'lazy'], [cached, 'cached']] as const) {
      for (const name of lazyNames) {
        const outcome = await handshakeOnce(ready.port, name, true, 15_000);
        if (outcome.ok) list.push(outcome.ms);
        else {
          failedHandshakes++;
          notes.push(`run ${run + 1}: ${pass} handshake for ${name} failed (${outcome.reason})`);
        }
      }
    }
    const after = await current.request<{ rss: number; stats: unknown }>('stats');
    rssAfterLazy.push(after.rss);
    console.log(
      `run ${run + 1} keeper: manageSync ${(ready.manageMs / 1000).toFixed(2)} s (process start to served ${(ready.sinceProcessStart / 1000).toFixed(2)} s, ` +
        `module loading ${(ready.processStartToHere / 1000).toFixed(2)} s), RSS ${(ready.rss / MiB).toFixed(0)} MiB (after GC ${(ready.rssAfterGc / MiB).toFixed(0)}, heap ${(ready.heapUsed / MiB).toFixed(0)}), ${ready.obtaining} obtaining, cache ${JSON.stringify(after.stats)}`,
    );
    await current.stop();
    current = await startServerProcess(script, ['--floor', root, '--names', String(NAMES)], 300_000);
    const f = current.ready as { ms: number; parsed: number };
    floor.push(f.ms);
    console.log(`run ${run + 1} floor:  read and parse ${f.parsed} sidecars in ${(f.ms / 1000).toFixed(2)} s`);
    await current.stop();
  }
  if (args.profile) {
    const dir = join(BENCH_CACHE_DIR, 'profiles');
    await rm(dir, { recursive: true, force: true });
    const profiled = await startServerProcessProfiled(script, root, dir);
    console.log(`profiled run: manageSync ${(profiled.manageMs / 1000).toFixed(2)} s (slower under the profiler); self time during the process:`);
    for (const line of await summarizeProfile(dir)) console.log(`  ${line}`);
  }
  const manageMedian = median(manage);
  const rssMedian = median(rss) / MiB;
  notes.push(
    `${runs} runs; above ${DEFAULT_EAGER_LOAD_LIMIT} names per call, one storage listing decides what is stored and sidecars are read in the background; process start to served (incl. tsx module loading) ${(median(fromStart) / 1000).toFixed(2)} s; ` +
      `RSS after a full GC ${(median(rssGc) / MiB).toFixed(0)} MiB (JS heap ${(median(heap) / MiB).toFixed(0)} MiB), after ${lazyCount * 2} handshakes ${(median(rssAfterLazy) / MiB).toFixed(0)} MiB`,
  );
  notes.push(`load average before ${loadBefore}, after ${loadAverage()} (2 shared cores: noisy)`);
  emitResult({
    bench: 'startup',
    rows: [
      {
        metric: `manageSync of ${NAMES} stored names`,
        value: `${(manageMedian / 1000).toFixed(2)} s`,
        baseline: `sidecar read floor ${(median(floor) / 1000).toFixed(2)} s`,
        ratio: (manageMedian / median(floor)).toFixed(2),
        target: '≤ 3 s',
        met: manageMedian <= 3000,
      },
      { metric: 'certificates obtained at start-up (CA calls)', value: String(obtaining), target: '0', met: obtaining === 0 },
      { metric: 'RSS after manageSync', value: `${rssMedian.toFixed(0)} MiB`, target: '≤ 300 MB', met: median(rss) <= 300e6 },
      {
        metric: 'handshake, lazily loaded name',
        value: `${median(lazy).toFixed(2)} ms`,
        baseline: `same names cached ${median(cached).toFixed(2)} ms`,
        ratio: (median(lazy) / median(cached)).toFixed(2),
      },
      ...(failedHandshakes > 0 ? [{ metric: 'failed handshakes', value: String(failedHandshakes), target: '0', met: false }] : []),
    ],
    notes,
  });
}

async function startServerProcessProfiled(script: string, root: string, dir: string): Promise<KeeperReady> {
  const { fork } = await import('node:child_process');
  const child = fork(script, ['--keeper', root, '--names', String(NAMES)], {
    execArgv: ['--import', 'tsx', '--cpu-prof', '--cpu-prof-dir', dir],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const ready = await new Promise<KeeperReady>((resolve, reject) => {
    child.once('message', (m) => resolve(m as KeeperReady));
    child.once('exit', (code) => reject(new Error(`profiled process exited with ${code}`)));
  });
  // A clean exit (not a kill) so the profile is written.
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.send({ cmd: 'exit' });
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  await exited;
  clearTimeout(timer);
  return ready;
}

if (args.keeper !== undefined) await runKeeper(args.keeper);
else if (args.floor !== undefined) await runFloor(args.floor);
else await runParent();
