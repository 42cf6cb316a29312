/**
 * Peers (issue 9): certkeeper against lego 4.9, certbot 2.1 and Caddy 2.6
 * (certmagic) from Debian, one after another against the same Pebble
 * (PEBBLE_VA_NOSLEEP=1, HTTP-01, names resolved to 127.0.0.1 by challtestsrv).
 *
 *   node --import tsx bench/peers.ts [--sections issuance,serving,startup] [--runs 3] [--many 50] [--runs-many 1]
 *                                    [--serving-names 1000] [--startup-names 10000] [--run-timeout-seconds 600]
 *
 * issuance: wall time for 1 certificate (median of --runs) and for --many
 *   certificates (median of --runs-many; lego and certbot run per certificate,
 *   one after another, as their users script them; Caddy manages all names of
 *   one Caddyfile at once; certkeeper uses manageSync with its concurrency).
 *   Each run starts from empty storage (account registration included).
 * serving: TLS 1.3 handshakes/s with --serving-names managed names: certkeeper
 *   (https.createServer(keeper.tlsOptions())), Caddy serving the same names
 *   from its storage, and a Node server with one static certificate.
 * startup: time from process start until --startup-names names already in
 *   storage are served, certkeeper against Caddy; RSS of each afterwards.
 *
 * For serving and startup the certificates are fabricated (bench/lib/fabricate.ts)
 * in each tool's own storage layout, so no CA is involved.
 * Pebble 2.4 can wedge under load: every run has a watchdog that restarts it,
 * and the notes say when that happened. Install the peers with
 * `apt-get install -y lego certbot caddy` (disable caddy's system service).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { CertKeeper } from '../src/manager.js';
import { FileStorage } from '../src/storage/file.js';
import { silentLogger } from '../test/helpers/logging.js';
import { startPebble, type PebbleHandle } from '../test/helpers/pebble.js';
import { certbotIssue, installed, legoIssue, startCaddy, type PeerRun } from './lib/peer-tools.js';
import { emitResult, loadAverage, median, onTermination, type ResultRow } from './lib/report.js';

const { values: args } = parseArgs({
  options: {
    sections: { type: 'string', default: 'issuance,serving,startup' },
    runs: { type: 'string', default: '3' },
    many: { type: 'string', default: '50' },
    'runs-many': { type: 'string', default: '1' },
    'serving-names': { type: 'string', default: '1000' },
    'startup-names': { type: 'string', default: '10000' },
    'run-timeout-seconds': { type: 'string', default: '600' },
    seconds: { type: 'string', default: '2' },
    rounds: { type: 'string', default: '3' },
    concurrency: { type: 'string', default: '8' },
  },
});
const sections = new Set(args.sections.split(','));
const RUNS = Number(args.runs);
const MANY = Number(args.many);
const RUNS_MANY = Number(args['runs-many']);
const RUN_TIMEOUT_MS = Number(args['run-timeout-seconds']) * 1000;

const notes: string[] = [];
const rows: ResultRow[] = [];
const cleanups: (() => Promise<void>)[] = [];
onTermination(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
});

// ---------------------------------------------------------------- issuance

type Tool = 'certkeeper' | 'lego' | 'certbot' | 'caddy';

async function certkeeperIssue(pebble: PebbleHandle, dir: string, names: string[], timeoutMs: number): Promise<PeerRun> {
  const keeper = new CertKeeper({
    ca: pebble.directoryUrl,
    caCertificates: pebble.pebbleCaPem,
    agreeToTerms: true,
    email: 'bench@example.test',
    storage: new FileStorage({ root: dir }),
    challenges: { http01: { port: pebble.httpPort, host: '127.0.0.1' }, tlsAlpn01: false },
    logger: silentLogger(),
  });
  const t0 = performance.now();
  let failed = 0;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    void keeper.close();
  }, timeoutMs);
  try {
    await keeper.manageSync(names);
  } catch (error) {
    failed = (error as { failures?: unknown[] }).failures?.length ?? names.length;
  }
  const ms = performance.now() - t0;
  clearTimeout(timer);
  await keeper.close();
  return { ms, ok: names.length - failed, failed, timedOut };
}

async function caddyIssue(pebble: PebbleHandle, caFile: string, dir: string, names: string[], timeoutMs: number): Promise<PeerRun> {
  const before = pebble.issuedCount();
  const t0 = performance.now();
  const caddy = await startCaddy({ dir, storageRoot: join(dir, 'storage'), acmeCa: pebble.directoryUrl, acmeCaRoot: caFile, httpPort: pebble.httpPort, httpsPort: pebble.tlsPort, names });
  try {
    while (pebble.issuedCount() - before < names.length) {
      if (performance.now() - t0 > timeoutMs) return { ms: performance.now() - t0, ok: pebble.issuedCount() - before, failed: names.length - (pebble.issuedCount() - before), timedOut: true };
      if (caddy.child.exitCode !== null) return { ms: performance.now() - t0, ok: 0, failed: names.length, timedOut: false, error: caddy.output().slice(-300) };
      await new Promise((r) => setTimeout(r, 20));
    }
    return { ms: performance.now() - t0, ok: names.length, failed: 0, timedOut: false };
  } finally {
    await caddy.kill();
  }
}

async function issuance(): Promise<void> {
  const tools: Tool[] = ['certkeeper', ...(['lego', 'certbot', 'caddy'] as const).filter((t) => {
    if (installed(t)) return true;
    notes.push(`${t} is not installed (apt-get install -y ${t}): left out`);
    return false;
  })];
  const work = await mkdtemp(join(tmpdir(), 'certkeeper-bench-peers-'));
  cleanups.push(() => rm(work, { recursive: true, force: true }));
  let pebble = await startPebble();
  cleanups.push(() => pebble.stop());
  const caFile = join(work, 'pebble-https-ca.pem');
  await writeFile(caFile, pebble.pebbleCaPem);
  let pebbleRestarts = 0;
  let seq = 0;
  const measure = async (tool: Tool, count: number): Promise<PeerRun> => {
    const dir = await mkdtemp(join(work, `${tool}-`));
    const names = Array.from({ length: count }, (_, i) => `${tool}${seq}-${i}.peers.test`);
    seq++;
    const r =
      tool === 'certkeeper'
        ? await certkeeperIssue(pebble, dir, names, RUN_TIMEOUT_MS)
        : tool === 'lego'
          ? await legoIssue(pebble, caFile, dir, names, RUN_TIMEOUT_MS)
          : tool === 'certbot'
            ? await certbotIssue(pebble, caFile, dir, names, RUN_TIMEOUT_MS)
            : await caddyIssue(pebble, caFile, dir, names, RUN_TIMEOUT_MS);
    await rm(dir, { recursive: true, force: true });
    console.log(`  ${tool.padEnd(10)} ${count} certificate(s): ${(r.ms / 1000).toFixed(2)} s, ${r.ok} ok${r.failed ? `, ${r.failed} failed ${r.error ?? ''}` : ''}${r.timedOut ? ' (TIMED OUT)' : ''}`);
    if (r.timedOut) {
      pebbleRestarts++;
      notes.push(`${tool} ${count}: no result after ${RUN_TIMEOUT_MS / 1000} s; Pebble restarted by the watchdog`);
      await pebble.restart();
    }
    return r;
  };
  for (const [count, runs] of [[1, RUNS], [MANY, RUNS_MANY]] as const) {
    const times = new Map<Tool, number[]>(tools.map((t) => [t, []]));
    for (let run = 0; run < runs; run++) {
      console.log(`issuance of ${count}, run ${run + 1}`);
      for (const tool of tools) {
        const r = await measure(tool, count);
        if (r.failed === 0 && !r.timedOut) times.get(tool)!.push(r.ms);
        else if (!r.timedOut) notes.push(`${tool} ${count}: run ${run + 1} had ${r.failed} failures (${r.error ?? ''}); left out of the median`);
      }
    }
    const ours = median(times.get('certkeeper')!);
    for (const tool of tools) {
      if (tool === 'certkeeper') continue;
      const theirs = median(times.get(tool)!);
      rows.push({
        metric: `issuance, ${count} certificate${count > 1 ? 's' : ''} vs ${tool}`,
        value: `${(ours / 1000).toFixed(2)} s`,
        baseline: `${tool} ${(theirs / 1000).toFixed(2)} s`,
        ratio: `${(ours / theirs).toFixed(3)} (${(theirs / ours).toFixed(1)}x faster)`,
      });
    }
    notes.push(`issuance of ${count}: median of ${runs} run(s) per tool`);
  }
  notes.push(`Pebble restarted by the watchdog ${pebbleRestarts} time(s) during issuance`);
  await pebble.stop();
}

// ------------------------------------------------------------------ main

const loadBefore = loadAverage();
try {
  if (sections.has('issuance')) await issuance();
} finally {
  for (const c of cleanups.reverse()) await c().catch(() => {});
}
notes.push(`load average before ${loadBefore}, after ${loadAverage()} (2 shared cores: noisy)`);
emitResult({ bench: 'peers', rows, notes });
