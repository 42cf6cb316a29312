#!/usr/bin/env node
// Runs benchmarks and appends their results to bench/RESULTS.md as a Markdown table.
//
//   npm run bench                      the default set: what users run, the built package (built, on-demand-burst, fleet-million)
//   npm run bench -- <name> [...]      named benchmarks (see BENCHES), e.g. `npm run bench -- serving`
//   npm run bench -- serving --rounds 3    arguments after the names go to every benchmark run
//   npm run bench -- --list            list them
//
// Each benchmark runs in its own process (node --import tsx bench/<name>.ts) with a time limit
// (BENCH_TIMEOUT_SECONDS, default per benchmark); on timeout its process group is killed.
// A benchmark reports through a final `BENCH_RESULT <json>` line (bench/lib/report.ts); for the
// ones that do not, the table gets their exit status and last output line.
import { execFileSync, spawn } from 'node:child_process';
import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
// BENCH_RESULTS_FILE sends the table elsewhere (a scratch file), so exploratory runs leave bench/RESULTS.md alone.
const resultsFile = process.env.BENCH_RESULTS_FILE ?? join(repo, 'bench', 'RESULTS.md');

/** name -> default time limit in seconds. */
const BENCHES = {
  obtain: 600,
  serving: 900,
  rotation: 900,
  startup: 900,
  peers: 3600,
  handshakes: 600,
  storage: 900,
  'dns01-vs-lego': 600,
  middleware: 600,
  reload: 600,
  'startup-import': 300,
  'storage-locks': 1200,
  'daemon-vs-peers': 1800,
  built: 1800,
  'ari-drill': 2400,
  'wake-up': 1800,
  'fleet-million': 3600,
  'on-demand-burst': 600,
};
// The default set measures the packed or built package in its own process, every figure issue 20 names.
const CORE = ['built', 'on-demand-burst', 'fleet-million'];
// These load src/ through tsx in the measuring process: development benchmarks, not what users run.
const FROM_SOURCE = ['obtain', 'serving', 'rotation', 'startup', 'peers', 'handshakes', 'dns01-vs-lego', 'middleware', 'reload', 'ari-drill', 'wake-up'];

const argv = process.argv.slice(2);
if (argv.includes('--list')) {
  for (const name of Object.keys(BENCHES)) console.log(`${name}${CORE.includes(name) ? ' (default)' : ''}${FROM_SOURCE.includes(name) ? ' (development: src/ through tsx)' : ''}${existsSync(join(repo, 'bench', `${name}.ts`)) ? '' : ' (missing)'}`);
  process.exit(0);
}
const firstOption = argv.findIndex((a) => a.startsWith('-'));
const names = firstOption === -1 ? argv : argv.slice(0, firstOption);
const passThrough = firstOption === -1 ? [] : argv.slice(firstOption);
const selected = names.length > 0 ? names : CORE;
for (const name of selected) {
  if (!(name in BENCHES) || !existsSync(join(repo, 'bench', `${name}.ts`))) {
    console.error(`unknown benchmark "${name}"; known: ${Object.keys(BENCHES).join(', ')}`);
    process.exit(2);
  }
}

function quiet(cmd, args) {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 10_000 }).trim();
  } catch {
    return undefined;
  }
}

function packageVersion(pkg) {
  return quiet('dpkg-query', ['-W', '-f=${Version}', pkg]);
}

function machine() {
  const model = cpus()[0]?.model?.trim() ?? 'unknown CPU';
  const nproc = quiet('nproc', []) ?? String(cpus().length);
  const peers = ['pebble', 'lego', 'certbot', 'caddy']
    .map((p) => [p, packageVersion(p)])
    .filter(([, v]) => v)
    .map(([p, v]) => `${p} ${v}`);
  const acmeClient = JSON.parse(readFileSync(join(repo, 'node_modules', 'acme-client', 'package.json'), 'utf8')).version;
  return { model, nproc, memGiB: (totalmem() / 2 ** 30).toFixed(1), node: process.version, peers: [`acme-client ${acmeClient}`, ...peers] };
}

const load = () => loadavg().map((l) => l.toFixed(2)).join(' ');
const cell = (s) => String(s ?? '').replaceAll('|', '\\|').replaceAll('\n', ' ');

function runOne(name) {
  return new Promise((resolve) => {
    const limit = Number(process.env.BENCH_TIMEOUT_SECONDS ?? BENCHES[name]);
    const started = Date.now();
    const loadStart = load();
    console.log(`\n### ${name} (time limit ${limit} s, load ${loadStart})`);
    const child = spawn(process.execPath, ['--import', 'tsx', join('bench', `${name}.ts`), ...passThrough], {
      cwd: repo,
      stdio: ['ignore', 'pipe', 'inherit'],
      detached: true, // own process group, so a timeout kills everything it started
    });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (chunk) => {
      out += chunk;
      process.stdout.write(chunk);
    });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid, 'SIGTERM');
        setTimeout(() => {
          try {
            process.kill(-child.pid, 'SIGKILL');
          } catch {}
        }, 5000).unref();
      } catch {}
    }, limit * 1000);
    const forward = (signal) => {
      try {
        process.kill(-child.pid, signal);
      } catch {}
    };
    process.on('SIGINT', forward);
    process.on('SIGTERM', forward);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      process.off('SIGINT', forward);
      process.off('SIGTERM', forward);
      const line = out.split('\n').reverse().find((l) => l.startsWith('BENCH_RESULT '));
      let result;
      if (line) {
        try {
          result = JSON.parse(line.slice('BENCH_RESULT '.length));
        } catch {}
      }
      if (!result) {
        const last = out.trim().split('\n').filter(Boolean).slice(-1)[0] ?? '';
        result = { bench: name, rows: [{ metric: timedOut ? `timed out after ${limit} s` : `exit ${code ?? signal}`, value: last }], notes: [] };
      } else if (timedOut || code !== 0) {
        result.notes.push(timedOut ? `timed out after ${limit} s` : `exited with ${code ?? signal}`);
      }
      result.seconds = Math.round((Date.now() - started) / 1000);
      result.load = `${loadStart} → ${load()}`;
      resolve(result);
    });
  });
}

const m = machine();
const date = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
const commit = quiet('git', ['-C', repo, 'rev-parse', '--short', 'HEAD']) ?? 'unknown';
const results = [];
for (const name of selected) results.push(await runOne(name));

const lines = [];
lines.push(`## ${date}: ${selected.join(', ')}${passThrough.length ? ` (${passThrough.join(' ')})` : ''}`);
lines.push('');
lines.push(`Machine: ${m.nproc} cores (${m.model}), ${m.memGiB} GiB; Node ${m.node}; ${m.peers.join(', ')}; commit ${commit}.`);
lines.push('The machine is shared (other work runs on the same 2 cores): the load average is recorded per benchmark and the numbers are noisy. Compare the ratios (baseline measured in the same run), not absolute values across runs.');
lines.push('');
lines.push('| Benchmark | Metric | certkeeper | Baseline (same run) | Ratio | Target | Met | Load (1/5/15 min, start → end) |');
lines.push('|---|---|---|---|---|---|---|---|');
for (const r of results) {
  for (const row of r.rows) {
    const met = row.met === undefined ? '' : row.met ? 'yes' : '**no**';
    lines.push(`| ${cell(r.bench)} | ${cell(row.metric)} | ${cell(row.value)} | ${cell(row.baseline)} | ${cell(row.ratio)} | ${cell(row.target)} | ${met} | ${cell(r.load)} |`);
  }
}
const notes = results.flatMap((r) => r.notes.map((n) => `- ${r.bench} (${r.seconds} s): ${n}`));
if (notes.length) lines.push('', ...notes);
lines.push('', '');

if (!existsSync(resultsFile)) {
  writeFileSync(resultsFile, '# Benchmark results\n\nAppended by `npm run bench` (scripts/run-bench.mjs), newest last. See bench/README.md for what each benchmark measures.\n\n');
}
appendFileSync(resultsFile, lines.join('\n'));
console.log(`\nresults appended to ${resultsFile}`);
const failed = results.some((r) => r.notes.some((n) => /timed out|exited with/.test(n)) || r.rows.some((row) => /^exit [^0]|timed out/.test(row.metric)));
process.exit(failed ? 1 : 0);
