/**
 * Start-up cost of the BUILT package (issue 13, item 7): `node -e 0` (baseline),
 * `import('<root>/dist/index.js')` and `node dist/cli/main.js --help`, alternating
 * within each run so load drifts hit all three alike. Medians over --runs; each
 * reported as the difference and ratio against bare node measured in the same run.
 *
 *   node --import tsx bench/startup-import.ts [--runs 15] [--no-build]
 *
 * Builds first (npm run build) unless --no-build, so the figures are for the tree.
 * When GNU time is at /usr/bin/time, each run also records the child's CPU time
 * (user + system, from its rusage): on a shared, loaded machine wall time mostly
 * measures waiting for a core, CPU time much less so. The targets are on wall time.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { emitResult, loadAverage, median, type ResultRow } from './lib/report.js';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const argv = process.argv.slice(2);
const runsAt = argv.indexOf('--runs');
const runs = runsAt === -1 ? 15 : Number(argv[runsAt + 1]);
if (!Number.isInteger(runs) || runs < 1) throw new Error('--runs needs a positive integer');

const IMPORT_TARGET_S = 0.15;
const HELP_TARGET_S = 0.3;

if (!argv.includes('--no-build')) {
  const build = spawnSync('npm', ['run', 'build'], { cwd: repo, stdio: ['ignore', 'ignore', 'inherit'] });
  if (build.status !== 0) throw new Error(`npm run build failed (${build.status ?? build.signal})`);
}
const entry = join(repo, 'dist', 'index.js');
const cli = join(repo, 'dist', 'cli', 'main.js');
if (!existsSync(entry) || !existsSync(cli)) throw new Error('dist/ is missing: run npm run build');

const variants = {
  bare: ['-e', '0'],
  import: ['--input-type=module', '-e', `await import(${JSON.stringify(pathToFileURL(entry).href)})`],
  help: [cli, '--help'],
} as const;
type Variant = keyof typeof variants;

const GNU_TIME = '/usr/bin/time';
const cpuDir = existsSync(GNU_TIME) ? mkdtempSync(join(tmpdir(), 'ck-startup-import-')) : undefined;
process.on('exit', () => cpuDir !== undefined && rmSync(cpuDir, { recursive: true, force: true }));

/**
 * Wall time of one child process (seconds), and its CPU time when GNU time is there; throws if it
 * fails (a broken build must not time as fast). GNU time adds the same fork+exec to every variant.
 */
function time(variant: Variant): { wall: number; cpu?: number } {
  const cpuFile = cpuDir !== undefined ? join(cpuDir, 'cpu') : undefined;
  const [command, args] = cpuFile !== undefined ? [GNU_TIME, ['-f', '%U %S', '-o', cpuFile, process.execPath, ...variants[variant]]] : [process.execPath, [...variants[variant]]];
  const started = process.hrtime.bigint();
  const child = spawnSync(command, args, { cwd: repo, stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
  const wall = Number(process.hrtime.bigint() - started) / 1e9;
  if (child.status !== 0) throw new Error(`${variant} exited with ${child.status ?? child.signal}: ${child.stderr}`);
  if (cpuFile === undefined) return { wall };
  const [user, system] = readFileSync(cpuFile, 'utf8').trim().split(/\s+/).map(Number);
  return { wall, cpu: (user as number) + (system as number) };
}

const loadBefore = loadAverage();
const samples: Record<Variant, number[]> = { bare: [], import: [], help: [] };
const cpu: Record<Variant, number[]> = { bare: [], import: [], help: [] };
const order: Variant[] = ['bare', 'import', 'help'];
for (const v of order) time(v); // warm the file cache; not counted
for (let i = 0; i < runs; i++) {
  // Rotate the order each run so no variant always runs right after another.
  for (let j = 0; j < order.length; j++) {
    const v = order[(i + j) % order.length] as Variant;
    const t = time(v);
    samples[v].push(t.wall);
    if (t.cpu !== undefined) cpu[v].push(t.cpu);
  }
}
const loadAfter = loadAverage();

const bare = median(samples.bare);
const ms = (s: number): string => `${(s * 1000).toFixed(0)} ms`;
const row = (metric: string, variant: Variant, target: number): ResultRow => {
  const value = median(samples[variant]);
  const over = value - bare;
  return {
    metric: `${metric}: over bare node`,
    value: `+${ms(over)} (total ${ms(value)})`,
    baseline: `node -e 0 ${ms(bare)}`,
    ratio: (value / bare).toFixed(2),
    target: `≤ +${ms(target)}`,
    met: over <= target,
  };
};

const cpuRow = (metric: string, variant: Variant): ResultRow => {
  const value = median(cpu[variant]);
  const base = median(cpu.bare);
  return { metric: `${metric}: CPU time (user+sys) over bare node`, value: `+${ms(value - base)} (total ${ms(value)})`, baseline: `node -e 0 ${ms(base)}`, ratio: (value / base).toFixed(2) };
};
const cpuRows = cpu.bare.length > 0 ? [cpuRow("import('dist/index.js')", 'import'), cpuRow('certkeeper --help', 'help')] : [];

emitResult({
  bench: 'startup-import',
  rows: [row("import('dist/index.js')", 'import', IMPORT_TARGET_S), row('certkeeper --help', 'help', HELP_TARGET_S), ...cpuRows],
  notes: [
    `${runs} alternating runs of each, medians; spread (min–max) bare ${ms(Math.min(...samples.bare))}–${ms(Math.max(...samples.bare))}, import ${ms(Math.min(...samples.import))}–${ms(Math.max(...samples.import))}, help ${ms(Math.min(...samples.help))}–${ms(Math.max(...samples.help))}`,
    cpu.bare.length > 0 ? 'CPU time from GNU time (10 ms resolution), a median per variant' : 'no /usr/bin/time: CPU time not measured',
    `load average before ${loadBefore}, after ${loadAfter} (2 shared cores: noisy)`,
  ],
});
