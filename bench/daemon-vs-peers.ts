/**
 * The daemon against its peers (issue 19): wall time to bring 20 configured
 * names from nothing (empty storage, no account) to certificate files written
 * and nginx reloaded by a deploy hook, for
 *
 * - certkeeper: the built package, `node dist/cli/main.js run --config f`
 *   (webroot mode, one certificate per name, deploy hook per certificate),
 *   started by the benchmark and stopped once every hook has run;
 * - certbot: `certbot certonly --webroot --deploy-hook ...`, one process per
 *   name, one after another (as a provisioning script runs it);
 * - lego: `lego --http --http.webroot ... run --run-hook ...`, one process per
 *   name, one after another;
 *
 * all against one Pebble (PEBBLE_VA_NOSLEEP=1; challtestsrv resolves every
 * name to 127.0.0.1) validating HTTP-01 through one nginx serving the webroot
 * on Pebble's HTTP-01 port. Every tool uses ECDSA P-256 keys, a fresh account
 * and distinct names (no authorization reuse). The hook is the same script for
 * all three: `nginx -s reload`, then a line in a marker file; the run ends
 * when the marker has 20 lines (and the tool has exited, for certbot and lego).
 *
 *   node --import tsx bench/daemon-vs-peers.ts [--names 20] [--runs 3] [--run-timeout-seconds 600]
 *
 * Needs `npm run build` (the built CLI) and pebble, nginx, certbot, lego
 * (`apt-get install -y pebble nginx certbot lego`).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { startNginx, type ServerHandle } from '../test/daemon/servers.js';
import { startPebble, type PebbleHandle } from '../test/helpers/pebble.js';
import { findBinary } from '../test/helpers/system.js';
import { emitResult, loadAverage, median, onTermination, type ResultRow } from './lib/report.js';

const { values: args } = parseArgs({
  options: {
    names: { type: 'string', default: '20' },
    runs: { type: 'string', default: '3' },
    'run-timeout-seconds': { type: 'string', default: '600' },
  },
});
const COUNT = Number(args.names);
const RUNS = Number(args.runs);
const RUN_TIMEOUT_MS = Number(args['run-timeout-seconds']) * 1000;
const REPO = join(fileURLToPath(import.meta.url), '..', '..');
const BIN = join(REPO, 'dist', 'cli', 'main.js');

for (const bin of ['pebble', 'pebble-challtestsrv', 'nginx', 'certbot', 'lego']) {
  if (!findBinary(bin)) {
    console.error(`${bin} is not installed: apt-get install -y pebble nginx certbot lego`);
    process.exit(2);
  }
}
if (!existsSync(BIN)) {
  console.error(`${BIN} is missing: run npm run build first (the benchmark runs the built package)`);
  process.exit(2);
}

type Tool = 'certkeeper' | 'certbot' | 'lego';
const TOOLS: readonly Tool[] = ['certkeeper', 'certbot', 'lego'];

const live = new Set<ChildProcess>();
const cleanups: (() => Promise<void>)[] = [];
onTermination(async () => {
  for (const child of live) child.kill('SIGKILL');
  for (const c of cleanups.reverse()) await c().catch(() => {});
});
process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

function spawnTool(bin: string, argv: string[], env: NodeJS.ProcessEnv): { child: ChildProcess; output: () => string; exited: Promise<number | null> } {
  const child = spawn(bin, argv, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(child);
  let output = '';
  const keep = (c: Buffer): void => void (output = (output + c.toString()).slice(-8000));
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<number | null>((resolve) => {
    child.once('error', (error) => {
      output += `spawn error: ${error.message}`;
      resolve(-1);
    });
    child.once('close', (code) => {
      live.delete(child);
      resolve(code);
    });
  });
  return { child, output: () => output, exited };
}

function markerLines(marker: string): number {
  return existsSync(marker) ? readFileSync(marker, 'utf8').split('\n').filter((l) => l !== '').length : 0;
}

async function waitFor(check: () => boolean, deadline: number): Promise<boolean> {
  while (!check()) {
    if (performance.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return true;
}

interface RunResult {
  ms: number;
  done: number;
  error?: string;
}

interface Context {
  pebble: PebbleHandle;
  caFile: string;
  webroot: string;
  /** Writes the hook script for one run; returns its path and the marker it appends to. */
  hook: (dir: string, tool: Tool) => Promise<{ script: string; marker: string }>;
}

async function certkeeperRun(ctx: Context, dir: string, names: string[]): Promise<RunResult> {
  const { script, marker } = await ctx.hook(dir, 'certkeeper');
  const config = join(dir, 'certkeeper.json');
  await writeFile(
    config,
    JSON.stringify({
      storage: join(dir, 'storage'),
      ca: ctx.pebble.directoryUrl,
      caRoot: ctx.caFile,
      email: 'bench@example.test',
      agreeToTerms: true,
      logLevel: 'warn',
      http01: { mode: 'webroot', webroot: ctx.webroot },
      files: { directory: join(dir, 'live') },
      deployHooks: [['/bin/sh', script]],
      certificates: names.map((name) => ({ names: [name] })),
    }),
  );
  const started = performance.now();
  const daemon = spawnTool(process.execPath, [BIN, 'run', '--config', config], { PATH: process.env.PATH, HOME: dir });
  let exitedEarly = false;
  void daemon.exited.then(() => (exitedEarly = true));
  const ok = await waitFor(() => exitedEarly || markerLines(marker) >= names.length, started + RUN_TIMEOUT_MS);
  const ms = performance.now() - started;
  daemon.child.kill('SIGTERM');
  const stopTimer = setTimeout(() => daemon.child.kill('SIGKILL'), 10_000);
  await daemon.exited;
  clearTimeout(stopTimer);
  const done = markerLines(marker);
  return { ms, done, ...(ok && done >= names.length ? {} : { error: exitedEarly ? `daemon exited: ${lastLines(daemon.output())}` : `timed out: ${lastLines(daemon.output())}` }) };
}

/** certbot or lego: one process per name, in turn, as a provisioning script runs them. */
async function peerRun(ctx: Context, tool: 'certbot' | 'lego', dir: string, names: string[]): Promise<RunResult> {
  const { script, marker } = await ctx.hook(dir, tool);
  const started = performance.now();
  let error: string | undefined;
  for (const name of names) {
    if (performance.now() - started > RUN_TIMEOUT_MS) {
      error = 'timed out';
      break;
    }
    const argv =
      tool === 'certbot'
        ? [
            'certonly', '--webroot', '-w', ctx.webroot, '--non-interactive', '--agree-tos', '--email', 'bench@example.test',
            '--server', ctx.pebble.directoryUrl, '--key-type', 'ecdsa', '--elliptic-curve', 'secp256r1',
            '--config-dir', join(dir, 'config'), '--work-dir', join(dir, 'work'), '--logs-dir', join(dir, 'logs'),
            '--no-random-sleep-on-renew', '--deploy-hook', `/bin/sh ${script}`, '-d', name,
          ]
        : [
            '--server', ctx.pebble.directoryUrl, '--accept-tos', '--email', 'bench@example.test', '--key-type', 'ec256',
            '--http', '--http.webroot', ctx.webroot, '--path', join(dir, 'lego'), '--domains', name, 'run', '--run-hook', `/bin/sh ${script}`,
          ];
    const env = { PATH: process.env.PATH, HOME: dir, ...(tool === 'certbot' ? { REQUESTS_CA_BUNDLE: ctx.caFile } : { LEGO_CA_CERTIFICATES: ctx.caFile }) };
    const run = spawnTool(tool, argv, env);
    const timer = setTimeout(() => run.child.kill('SIGKILL'), Math.max(1000, RUN_TIMEOUT_MS - (performance.now() - started)));
    const code = await run.exited;
    clearTimeout(timer);
    if (code !== 0) error ??= `${name}: exit ${code}: ${lastLines(run.output())}`;
  }
  return { ms: performance.now() - started, done: markerLines(marker), ...(error ? { error } : {}) };
}

/** How many of the names have their certificate file where the tool writes it. */
function filesWritten(tool: Tool, dir: string, names: string[]): number {
  const path = (name: string): string =>
    tool === 'certkeeper' ? join(dir, 'live', name, 'fullchain.pem') : tool === 'certbot' ? join(dir, 'config', 'live', name, 'fullchain.pem') : join(dir, 'lego', 'certificates', `${name}.crt`);
  return names.filter((name) => existsSync(path(name))).length;
}

function lastLines(text: string): string {
  return text.trim().split('\n').slice(-3).join(' | ').slice(0, 400);
}

const work = await mkdtemp(join(tmpdir(), 'certkeeper-bench-daemon-'));
// nginx's workers (nobody) walk into the webroot.
await chmod(work, 0o755);
cleanups.push(() => rm(work, { recursive: true, force: true }));
const loadStart = loadAverage();
const pebble = await startPebble();
cleanups.push(() => pebble.stop());
const caFile = join(work, 'pebble-https-ca.pem');
await writeFile(caFile, pebble.pebbleCaPem);
const webroot = join(work, 'webroot');
await mkdir(webroot, { recursive: true, mode: 0o755 });
const nginx: ServerHandle = await startNginx({ prefix: join(work, 'nginx'), httpPort: pebble.httpPort, webroot });
cleanups.push(() => nginx.stop());
const reload = nginx.reloadCommand.map((a) => `'${a}'`).join(' ');

const ctx: Context = {
  pebble,
  caFile,
  webroot,
  hook: async (dir, tool) => {
    await mkdir(dir, { recursive: true });
    const marker = join(dir, 'deployed.txt');
    const script = join(dir, 'deploy-hook.sh');
    // The same for every tool: reload nginx, then say which names were deployed.
    await writeFile(script, `${reload} || exit 1\necho "${tool} \${RENEWED_DOMAINS:-\$LEGO_CERT_DOMAIN}" >> '${marker}'\n`, { mode: 0o755 });
    return { script, marker };
  },
};

const times: Record<Tool, number[]> = { certkeeper: [], certbot: [], lego: [] };
const notes: string[] = [];
const issuedBefore = pebble.issuedCount();
try {
  for (let run = 0; run < RUNS; run++) {
    // Rotate the order so no tool always runs first (or last) on a warming machine.
    const order = TOOLS.map((_, i) => TOOLS[(i + run) % TOOLS.length] as Tool);
    for (const tool of order) {
      const names = Array.from({ length: COUNT }, (_, i) => `${tool}-r${run}-${i}.bench.test`);
      const dir = join(work, `${tool}-${run}`);
      await mkdir(dir, { recursive: true });
      const result = tool === 'certkeeper' ? await certkeeperRun(ctx, dir, names) : await peerRun(ctx, tool, dir, names);
      const files = filesWritten(tool, dir, names);
      if (files < COUNT) result.error ??= `${files}/${COUNT} certificate files written`;
      const line = `run ${run + 1} ${tool}: ${(result.ms / 1000).toFixed(2)} s, ${result.done}/${COUNT} deployed, ${files}/${COUNT} files${result.error ? `; ${result.error}` : ''}`;
      console.log(line);
      if (result.error || result.done < COUNT) notes.push(line);
      else times[tool].push(result.ms);
    }
  }
} finally {
  await nginx.stop();
  await pebble.stop();
}
const issued = pebble.issuedCount() - issuedBefore;

const m = (tool: Tool): number => median(times[tool]);
const seconds = (ms: number): string => (Number.isFinite(ms) ? `${(ms / 1000).toFixed(2)} s` : 'n/a');
const ours = m('certkeeper');
const rows: ResultRow[] = (['certbot', 'lego'] as const).map((peer) => ({
  metric: `${COUNT} names to files + nginx reload: certkeeper run (built CLI) vs ${peer === 'certbot' ? 'certbot certonly --webroot' : 'lego --http.webroot'}, one per name in turn`,
  value: seconds(ours),
  baseline: `${peer} ${seconds(m(peer))}`,
  ratio: `${(ours / m(peer)).toFixed(3)} (${(m(peer) / ours).toFixed(1)}x faster)`,
}));
notes.push(
  `medians of ${RUNS} run(s) each (successful runs: certkeeper ${times.certkeeper.length}, certbot ${times.certbot.length}, lego ${times.lego.length}), order rotated per run`,
  `each run, s: ${TOOLS.map((t) => `${t} ${times[t].map((ms) => (ms / 1000).toFixed(2)).join(', ')}`).join('; ')}`,
  `nginx reloaded by the same hook script for all three; a run counts when every name's hook ran (it writes its line only after nginx -s reload succeeded) and every certificate file is there; certificates issued by Pebble: ${issued} (expected ${3 * COUNT * RUNS})`,
  `load average at start ${loadStart}, at end ${loadAverage()}`,
);
emitResult({ bench: 'daemon-vs-peers', rows, notes });
for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
