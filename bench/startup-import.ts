/**
 * Start-up cost of the BUILT package (issue 13, item 7): `node -e 0` (baseline),
 * `import('<root>/dist/index.js')` and `node dist/cli/main.js --help`, alternating
 * within each run so load drifts hit all three alike. Medians over --runs; each
 * reported as the difference and ratio against bare node measured in the same run.
 *
 *   node --import tsx bench/startup-import.ts [--runs 15] [--no-build]
 *
 * Builds first (npm run build) unless --no-build, so the figures are for the tree.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
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

/** Wall time of one child process, in seconds; throws if it fails (a broken build must not time as fast). */
function time(variant: Variant): number {
  const started = process.hrtime.bigint();
  const child = spawnSync(process.execPath, variants[variant], { cwd: repo, stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (child.status !== 0) throw new Error(`${variant} exited with ${child.status ?? child.signal}: ${child.stderr}`);
  return seconds;
}

const loadBefore = loadAverage();
const samples: Record<Variant, number[]> = { bare: [], import: [], help: [] };
const order: Variant[] = ['bare', 'import', 'help'];
for (const v of order) time(v); // warm the file cache; not counted
for (let i = 0; i < runs; i++) {
  // Rotate the order each run so no variant always runs right after another.
  for (let j = 0; j < order.length; j++) {
    const v = order[(i + j) % order.length] as Variant;
    samples[v].push(time(v));
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

emitResult({
  bench: 'startup-import',
  rows: [row("import('dist/index.js')", 'import', IMPORT_TARGET_S), row('certkeeper --help', 'help', HELP_TARGET_S)],
  notes: [
    `${runs} alternating runs of each, medians; spread (min–max) bare ${ms(Math.min(...samples.bare))}–${ms(Math.max(...samples.bare))}, import ${ms(Math.min(...samples.import))}–${ms(Math.max(...samples.import))}, help ${ms(Math.min(...samples.help))}–${ms(Math.max(...samples.help))}`,
    `load average before ${loadBefore}, after ${loadAfter} (2 shared cores: noisy)`,
  ],
});
