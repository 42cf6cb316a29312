/**
 * Peers (issue 9): certkeeper against lego 4.9, certbot 2.1 and Caddy 2.6
 * (certmagic) from Debian, one after another against the same Pebble
 * (PEBBLE_VA_NOSLEEP=1, HTTP-01, names resolved to 127.0.0.1 by challtestsrv).
 *
 *   node --import tsx bench/peers.ts [--sections issuance,serving,startup] [--runs 3] [--many 50] [--runs-many 1]
 *                                    [--serving-names 1000] [--startup-names 10000] [--rounds 6] [--seconds 1.5] [--run-timeout-seconds 600]
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
import { CertKeeper } from '../src/manager/keeper.js';
import { FileStorage } from '../src/storage/file.js';
import { silentLogger } from '../test/helpers/logging.js';
import { startPebble, type PebbleHandle } from '../test/helpers/pebble.js';
import { fileURLToPath } from 'node:url';
import { benchName, cachedCaddyStore, cachedStore } from './lib/fabricate.js';
import { certbotIssue, cpuMicrosOf, freePorts, installed, legoIssue, rssOf, startCaddy, type CaddyProcess, type PeerRun } from './lib/peer-tools.js';
import { emitResult, loadAverage, median, onTermination, percentile, type ResultRow } from './lib/report.js';
import { startServerProcess, type ServerProcess } from './lib/server-process.js';
import { handshakeOnce, tlsLoad } from './lib/tls-load.js';

const { values: args } = parseArgs({
  options: {
    sections: { type: 'string', default: 'issuance,serving,startup' },
    runs: { type: 'string', default: '3' },
    many: { type: 'string', default: '50' },
    'runs-many': { type: 'string', default: '1' },
    'serving-names': { type: 'string', default: '1000' },
    'startup-names': { type: 'string', default: '10000' },
    'run-timeout-seconds': { type: 'string', default: '600' },
    seconds: { type: 'string', default: '1.5' },
    rounds: { type: 'string', default: '6' },
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
    const issuedBefore = pebble.issuedCount();
    const r =
      tool === 'certkeeper'
        ? await certkeeperIssue(pebble, dir, names, RUN_TIMEOUT_MS)
        : tool === 'lego'
          ? await legoIssue(pebble, caFile, dir, names, RUN_TIMEOUT_MS)
          : tool === 'certbot'
            ? await certbotIssue(pebble, caFile, dir, names, RUN_TIMEOUT_MS)
            : await caddyIssue(pebble, caFile, dir, names, RUN_TIMEOUT_MS);
    await rm(dir, { recursive: true, force: true });
    // A tool's exit status is not proof: count what Pebble issued.
    const issued = pebble.issuedCount() - issuedBefore;
    if (!r.timedOut && issued < r.ok) {
      notes.push(`${tool} ${count}: reported ${r.ok} certificate(s) but Pebble issued ${issued}; counted as failed`);
      r.failed += r.ok - issued;
      r.ok = issued;
    }
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

// ------------------------------------------------- serving and start-up vs Caddy

/** Caddy's CA setting for the fabricated stores: nothing listens there, and no certificate is due, so Caddy never calls it. */
const UNUSED_ACME_CA = 'https://127.0.0.1:9/dir';
const STORE_LABEL = 'names-100000';
const STORE_SIZE = 100_000;
const CADDY_STORE_LABEL = 'caddy-10000';
const MiB = 2 ** 20;

/** Polls until every sample name gets its own certificate from the server on `port` (or the deadline passes). */
async function waitServed(port: number, sample: string[], deadlineMs: number, exited: () => boolean): Promise<boolean> {
  const end = performance.now() + deadlineMs;
  let pending = [...sample];
  while (pending.length > 0) {
    if (performance.now() > end || exited()) return false;
    const results = await Promise.all(pending.map((name) => handshakeOnce(port, name, true, 5000)));
    pending = pending.filter((_, i) => !results[i]?.ok);
    if (pending.length > 0) await new Promise((r) => setTimeout(r, 25));
  }
  return true;
}

async function startCaddyServing(dir: string, storageRoot: string, names: string[]): Promise<{ caddy: CaddyProcess; port: number }> {
  const [httpPort, httpsPort] = (await freePorts(2)) as [number, number];
  const caddy = await startCaddy({ dir, storageRoot, acmeCa: UNUSED_ACME_CA, acmeCaRoot: '/etc/ssl/certs/ca-certificates.crt', httpPort, httpsPort, names });
  cleanups.push(() => caddy.kill());
  return { caddy, port: httpsPort };
}

async function serving(): Promise<void> {
  if (!installed('caddy')) {
    notes.push('caddy is not installed: serving comparison left out');
    return;
  }
  const count = Number(args['serving-names']);
  const rounds = Number(args.rounds);
  const seconds = Number(args.seconds);
  const concurrency = Number(args.concurrency);
  const names = Array.from({ length: count }, (_, i) => benchName(i));
  const root = await cachedStore(STORE_LABEL, STORE_SIZE);
  const caddyRoot = await cachedCaddyStore(CADDY_STORE_LABEL, Math.max(count, Number(args['startup-names'])), UNUSED_ACME_CA);
  const work = await mkdtemp(join(tmpdir(), 'certkeeper-bench-peers-serving-'));
  cleanups.push(() => rm(work, { recursive: true, force: true }));
  console.log(`serving: certkeeper and a static Node server in one process, Caddy in another, ${count} names each`);
  const node: ServerProcess = await startServerProcess(fileURLToPath(new URL('./serving.ts', import.meta.url)), ['--server', root, '--names', String(count)], 600_000);
  cleanups.push(() => node.stop());
  const ready = node.ready as { staticPort: number; keeperPort: number };
  const { caddy, port: caddyPort } = await startCaddyServing(work, caddyRoot, names);
  if (!(await waitServed(caddyPort, names.slice(0, 5), 120_000, () => caddy.child.exitCode !== null))) throw new Error(`Caddy does not serve: ${caddy.output().slice(-500)}`);
  const stride = 7919;
  const spread = (i: number): string => benchName((i * stride) % count);
  const variants = [
    { label: 'static', port: ready.staticPort, name: () => 'static.bench.test', pid: node.child.pid, check: true },
    { label: 'certkeeper', port: ready.keeperPort, name: spread, pid: node.child.pid, check: true },
    { label: 'caddy', port: caddyPort, name: spread, pid: caddy.child.pid, check: true },
  ];
  const acc = new Map(variants.map((v) => [v.label, { rate: [] as number[], cpu: [] as number[], p99: [] as number[], failed: 0 }]));
  for (let round = 0; round < rounds; round++) {
    const order = [...variants.slice(round % 3), ...variants.slice(0, round % 3)];
    for (const v of order) {
      await tlsLoad({ port: v.port, name: v.name, durationMs: 300, concurrency, checkName: v.check });
      const cpu0 = await cpuMicrosOf(v.pid);
      const r = await tlsLoad({ port: v.port, name: v.name, durationMs: seconds * 1000, concurrency, checkName: v.check });
      const cpu = ((await cpuMicrosOf(v.pid)) - cpu0) / 1000 / Math.max(r.ok, 1);
      const a = acc.get(v.label)!;
      a.rate.push((r.ok / r.elapsedMs) * 1000);
      a.cpu.push(cpu);
      a.p99.push(percentile(r.latencies, 99));
      a.failed += r.failed;
      console.log(`  round ${round + 1} ${v.label.padEnd(10)} ${((r.ok / r.elapsedMs) * 1000).toFixed(0).padStart(5)} handshakes/s  ${cpu.toFixed(2)} ms server CPU each  failed ${r.failed}`);
    }
  }
  await caddy.kill();
  await node.stop();
  const k = acc.get('certkeeper')!;
  for (const label of ['caddy', 'static']) {
    const b = acc.get(label)!;
    rows.push({
      metric: `handshakes/s, ${count} names vs ${label === 'static' ? 'Node static certificate' : 'Caddy'}`,
      value: `${median(k.rate).toFixed(0)}/s, ${median(k.cpu).toFixed(2)} ms CPU each`,
      baseline: `${median(b.rate).toFixed(0)}/s, ${median(b.cpu).toFixed(2)} ms CPU each`,
      ratio: (median(k.rate) / median(b.rate)).toFixed(3),
    });
  }
  const failed = [...acc.entries()].filter(([, a]) => a.failed > 0).map(([l, a]) => `${l} ${a.failed}`);
  notes.push(`serving: ${rounds} rounds of ${seconds} s per server, ${concurrency} connections in flight, TLS 1.3, P-256; server CPU from /proc (10 ms ticks)${failed.length ? `; failed handshakes: ${failed.join(', ')}` : ''}`);
}

async function startup(): Promise<void> {
  if (!installed('caddy')) {
    notes.push('caddy is not installed: start-up comparison left out');
    return;
  }
  const count = Number(args['startup-names']);
  const runs = Number(args.runs);
  const names = Array.from({ length: count }, (_, i) => benchName(i));
  const sample = Array.from({ length: 20 }, (_, i) => benchName(Math.floor(((i + 0.5) * count) / 20)));
  const root = await cachedStore(STORE_LABEL, STORE_SIZE);
  const caddyRoot = await cachedCaddyStore(CADDY_STORE_LABEL, count, UNUSED_ACME_CA);
  const ours: number[] = [];
  const theirs: number[] = [];
  const ourRss: number[] = [];
  const theirRss: number[] = [];
  for (let run = 0; run < runs; run++) {
    // certkeeper: a fresh process (tsx included) until manageSync resolved and the sample names are served.
    const t0 = performance.now();
    const keeper = await startServerProcess(fileURLToPath(new URL('./startup.ts', import.meta.url)), ['--keeper', root, '--names', String(count)], 300_000);
    cleanups.push(() => keeper.stop());
    const port = (keeper.ready as { port: number }).port;
    const ok = await waitServed(port, sample, 60_000, () => keeper.child.exitCode !== null);
    const ms = performance.now() - t0;
    const rss = await rssOf(keeper.child.pid);
    await keeper.stop();
    if (ok) {
      ours.push(ms);
      ourRss.push(rss);
    } else notes.push(`startup run ${run + 1}: certkeeper did not serve every sample name`);
    const dir = await mkdtemp(join(tmpdir(), 'certkeeper-bench-peers-caddy-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const c0 = performance.now();
    const { caddy, port: caddyPort } = await startCaddyServing(dir, caddyRoot, names);
    const caddyOk = await waitServed(caddyPort, sample, 120_000, () => caddy.child.exitCode !== null);
    const caddyMs = performance.now() - c0;
    const caddyRss = await rssOf(caddy.child.pid);
    await caddy.kill();
    await rm(dir, { recursive: true, force: true });
    if (caddyOk) {
      theirs.push(caddyMs);
      theirRss.push(caddyRss);
    } else notes.push(`startup run ${run + 1}: Caddy did not serve every sample name: ${caddy.output().slice(-300)}`);
    console.log(`  startup run ${run + 1}: certkeeper ${(ms / 1000).toFixed(2)} s, RSS ${(rss / MiB).toFixed(0)} MiB; caddy ${(caddyMs / 1000).toFixed(2)} s, RSS ${(caddyRss / MiB).toFixed(0)} MiB`);
  }
  rows.push({
    metric: `start-up, ${count} stored names served (process start to 20 sample names served)`,
    value: `${(median(ours) / 1000).toFixed(2)} s`,
    baseline: `Caddy ${(median(theirs) / 1000).toFixed(2)} s`,
    ratio: (median(ours) / median(theirs)).toFixed(3),
  });
  rows.push({
    metric: `RSS after start-up, ${count} names`,
    value: `${(median(ourRss) / MiB).toFixed(0)} MiB`,
    baseline: `Caddy ${(median(theirRss) / MiB).toFixed(0)} MiB`,
    ratio: (median(ourRss) / median(theirRss)).toFixed(3),
  });
  notes.push(`startup: median of ${runs} runs; certkeeper runs from TypeScript through tsx (module loading included, about 1-2 s here); certkeeper loads certificates lazily above 1,000 names, Caddy loads all of them`);
}

// ------------------------------------------------------------------ main

const loadBefore = loadAverage();
try {
  if (sections.has('issuance')) await issuance();
  if (sections.has('serving')) await serving();
  if (sections.has('startup')) await startup();
} finally {
  for (const c of cleanups.reverse()) await c().catch(() => {});
}
notes.push(`load average before ${loadBefore}, after ${loadAverage()} (2 shared cores: noisy)`);
emitResult({ bench: 'peers', rows, notes });
