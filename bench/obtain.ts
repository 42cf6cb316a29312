/**
 * Issuance (issue 2): N certificates with distinct names from one Pebble
 * (PEBBLE_VA_NOSLEEP=1, real HTTP-01 validation, names resolved to 127.0.0.1
 * by challtestsrv), by certkeeper (`manageSync`, its own order concurrency,
 * FileStorage in a fresh temporary directory, fresh account) and by
 * acme-client's `auto()` used directly (separate process, default settings,
 * same number of orders in flight). The two alternate over the runs; the
 * figures are medians.
 *
 *   node --import tsx bench/obtain.ts [--count 20] [--runs 3] [--concurrency 10] [--run-timeout-seconds 120]
 *
 * Target: certkeeper obtains 20 certificates in at most 2 s.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { CertKeeper } from '../src/manager/keeper.js';
import { FileStorage } from '../src/storage/file.js';
import { silentLogger } from '../test/helpers/logging.js';
import { startPebble, type PebbleHandle } from '../test/helpers/pebble.js';
import { emitResult, loadAverage, median, onTermination } from './lib/report.js';

const { values: args } = parseArgs({
  options: {
    count: { type: 'string', default: '20' },
    runs: { type: 'string', default: '3' },
    concurrency: { type: 'string', default: '10' },
    'run-timeout-seconds': { type: 'string', default: '120' },
    /** Development aid: certkeeper runs only (no ratio). */
    'skip-acme-client': { type: 'boolean', default: false },
  },
});
const COUNT = Number(args.count);
const RUNS = Number(args.runs);
const CONCURRENCY = Number(args.concurrency);
const RUN_TIMEOUT_MS = Number(args['run-timeout-seconds']) * 1000;
const TARGET_MS = 2000;

interface RunOutcome {
  ms: number;
  ok: number;
  failed: number;
  timedOut: boolean;
}

const notes: string[] = [];
let pebble: PebbleHandle | undefined;
let work: string | undefined;
onTermination(async () => {
  await pebble?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

/** Runs one attempt with a deadline; on timeout Pebble is restarted (it can wedge under load) and the run counts as failed. */
async function withWatchdog(label: string, run: (signal: AbortSignal) => Promise<RunOutcome>): Promise<RunOutcome> {
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<RunOutcome>((resolve) => {
    timer = setTimeout(() => {
      controller.abort(new Error('run timed out'));
      resolve({ ms: RUN_TIMEOUT_MS, ok: 0, failed: COUNT, timedOut: true });
    }, RUN_TIMEOUT_MS);
  });
  const outcome = await Promise.race([run(controller.signal), timeout]);
  clearTimeout(timer);
  if (outcome.timedOut) {
    notes.push(`${label}: no result after ${RUN_TIMEOUT_MS / 1000} s; Pebble restarted by the watchdog (wedged?)`);
    await pebble?.restart();
  }
  return outcome;
}

async function certkeeperRun(p: PebbleHandle, run: number, signal: AbortSignal): Promise<RunOutcome> {
  const dir = await mkdtemp(join(work as string, 'certkeeper-'));
  const names = Array.from({ length: COUNT }, (_, i) => `k${run}-${i}.obtain.test`);
  const keeper = new CertKeeper({
    ca: p.directoryUrl,
    caCertificates: p.pebbleCaPem,
    agreeToTerms: true,
    email: 'bench@example.test',
    storage: new FileStorage({ root: dir }),
    challenges: { http01: { port: p.httpPort, host: '127.0.0.1' }, tlsAlpn01: false },
    maxConcurrentOrders: CONCURRENCY,
    logger: silentLogger(),
  });
  const onAbort = (): void => void keeper.close();
  signal.addEventListener('abort', onAbort, { once: true });
  const issuedBefore = p.issuedCount();
  const t0 = performance.now();
  let failed = 0;
  try {
    await keeper.manageSync(names);
  } catch (error) {
    failed = (error as { failures?: unknown[] }).failures?.length ?? COUNT;
  }
  const ms = performance.now() - t0;
  signal.removeEventListener('abort', onAbort);
  await keeper.close();
  const issued = p.issuedCount() - issuedBefore;
  if (issued !== COUNT - failed) notes.push(`certkeeper run ${run + 1}: Pebble logged ${issued} issuances for ${COUNT - failed} certificates`);
  return { ms, ok: COUNT - failed, failed, timedOut: false };
}

async function acmeClientRun(p: PebbleHandle, run: number, caFile: string, signal: AbortSignal): Promise<RunOutcome> {
  const names = Array.from({ length: COUNT }, (_, i) => `a${run}-${i}.obtain.test`);
  const script = fileURLToPath(new URL('./lib/acme-client-auto.ts', import.meta.url));
  const child = spawn(process.execPath, ['--import', 'tsx', script, p.directoryUrl, String(p.httpPort), String(CONCURRENCY), ...names], {
    env: { ...process.env, NODE_EXTRA_CA_CERTS: caFile },
    stdio: ['ignore', 'pipe', 'inherit'],
    signal,
  });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  child.on('error', () => {}); // abort: reported by the watchdog
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  const line = out.trim().split('\n').pop() ?? '';
  try {
    const result = JSON.parse(line) as { ms: number; ok: number; failed: number; errors: string[] };
    if (result.failed > 0) notes.push(`acme-client run ${run + 1}: ${result.failed} failed (${result.errors.join('; ')})`);
    return { ms: result.ms, ok: result.ok, failed: result.failed, timedOut: false };
  } catch {
    notes.push(`acme-client run ${run + 1}: child exited with ${code} and no result`);
    return { ms: Number.NaN, ok: 0, failed: COUNT, timedOut: false };
  }
}

async function main(): Promise<void> {
  const loadBefore = loadAverage();
  work = await mkdtemp(join(tmpdir(), 'certkeeper-bench-obtain-'));
  pebble = await startPebble();
  const caFile = join(work, 'pebble-https-ca.pem');
  await writeFile(caFile, pebble.pebbleCaPem);
  const keeperRuns: RunOutcome[] = [];
  const clientRuns: RunOutcome[] = [];
  try {
    for (let run = 0; run < RUNS; run++) {
      const p = pebble;
      const k = await withWatchdog(`certkeeper run ${run + 1}`, (signal) => certkeeperRun(p, run, signal));
      keeperRuns.push(k);
      console.log(`run ${run + 1} certkeeper:  ${(k.ms / 1000).toFixed(2)} s for ${k.ok}/${COUNT} certificates`);
      if (args['skip-acme-client']) continue;
      const a = await withWatchdog(`acme-client run ${run + 1}`, (signal) => acmeClientRun(p, run, caFile, signal));
      clientRuns.push(a);
      console.log(`run ${run + 1} acme-client: ${(a.ms / 1000).toFixed(2)} s for ${a.ok}/${COUNT} certificates`);
    }
  } finally {
    await pebble.stop();
    await rm(work, { recursive: true, force: true });
  }
  const complete = (runs: RunOutcome[]): number[] => runs.filter((r) => r.failed === 0).map((r) => r.ms);
  const keeperMs = median(complete(keeperRuns));
  const clientMs = median(complete(clientRuns));
  const failedRuns = keeperRuns.filter((r) => r.failed > 0).length + clientRuns.filter((r) => r.failed > 0).length;
  if (failedRuns > 0) notes.push(`${failedRuns} run(s) with failures left out of the medians`);
  notes.push(`${RUNS} runs, ${CONCURRENCY} orders in flight for both, fresh account and storage per run; load average before ${loadBefore}, after ${loadAverage()} (2 shared cores: noisy)`);
  emitResult({
    bench: 'obtain',
    rows: [
      {
        metric: `${COUNT} certificates, Pebble HTTP-01`,
        value: `${(keeperMs / 1000).toFixed(2)} s`,
        baseline: `acme-client auto() ${(clientMs / 1000).toFixed(2)} s`,
        ratio: `${(keeperMs / clientMs).toFixed(3)} (${(clientMs / keeperMs).toFixed(1)}x faster)`,
        ...(COUNT === 20 ? { target: '≤ 2 s', met: keeperMs <= TARGET_MS } : {}),
      },
    ],
    notes,
  });
}

await main();
