/**
 * How a benchmark reports: a human-readable table on stdout, then one line
 * `BENCH_RESULT <json>` that scripts/run-bench.mjs turns into rows of
 * bench/RESULTS.md. Figures are medians over the runs; ratios compare with a
 * baseline measured in the same run.
 */
import { loadavg } from 'node:os';

export interface ResultRow {
  metric: string;
  /** certkeeper's figure, with its unit (e.g. "1.84 s"). */
  value: string;
  /** The baseline measured in the same run, with its unit ("" when none). */
  baseline?: string;
  /** value / baseline (or the quantity the target is stated on). */
  ratio?: string;
  /** e.g. "≤ 2 s", "≥ 0.95". */
  target?: string;
  met?: boolean;
}

export interface BenchResult {
  bench: string;
  rows: ResultRow[];
  /** Free-form notes: runs, load, anomalies (Pebble restarts, failures). */
  notes: string[];
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/** Nearest-rank percentile (p in 0..100) of unsorted values. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank] as number;
}

export function loadAverage(): string {
  return loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
}

export function emitResult(result: BenchResult): void {
  console.log('');
  console.log(`== ${result.bench} ==`);
  for (const row of result.rows) {
    const parts = [`${row.metric}: ${row.value}`];
    if (row.baseline) parts.push(`baseline ${row.baseline}`);
    if (row.ratio) parts.push(`ratio ${row.ratio}`);
    if (row.target) parts.push(`target ${row.target} ${row.met === undefined ? '' : row.met ? 'MET' : 'NOT MET'}`.trimEnd());
    console.log(`  ${parts.join('  |  ')}`);
  }
  for (const note of result.notes) console.log(`  note: ${note}`);
  console.log(`BENCH_RESULT ${JSON.stringify(result)}`);
}

/** Kills children on Ctrl-C / SIGTERM (the runner's timeout) before exiting. */
export function onTermination(cleanup: () => Promise<void> | void): void {
  const handler = (signal: NodeJS.Signals): void => {
    Promise.resolve()
      .then(cleanup)
      .catch(() => {})
      .finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };
  process.once('SIGINT', handler);
  process.once('SIGTERM', handler);
}
