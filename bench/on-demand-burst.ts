/**
 * On-demand burst (issue 20): 5,000 new names in 60 s against a keeper whose
 * `decide()` allows every name. What matters is the order rate limit: orders
 * never above the configured rate, handshakes beyond it fail fast, RSS bounded,
 * no unhandled error.
 *
 * The keeper runs the BUILT package (dist/) in its own `node` process
 * (bench/lib/fleet-keeper.mjs) with the internal issuer (no network CA: an
 * order is a key and a signature, so the limiter, not a CA, sets the pace) and
 * Redis storage under the prefix `benchburst:` (removed at the end). The
 * client opens one handshake per new name on a fixed schedule (open loop:
 * --names over --seconds, whatever the answers), each with SNI of a name never
 * seen before.
 *
 * Baselines: the configured rate (orders), and handshakes to a static-certificate
 * Node server made the same way (failure latency vs a full handshake).
 *
 *   node --import tsx bench/on-demand-burst.ts [--names 5000] [--seconds 60] [--rate 10] [--burst 20]
 */
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { cleanupRedis } from './lib/bulk-load.js';
import { createBenchCa, leafChainPem } from './lib/fabricate.js';
import { startPlainProcess, type PlainProcess } from './lib/plain-process.js';
import { emitResult, loadAverage, median, onTermination, percentile, type ResultRow } from './lib/report.js';
import { handshakeOnce } from './lib/tls-load.js';

const { values: args } = parseArgs({
  options: {
    names: { type: 'string', default: '5000' },
    seconds: { type: 'string', default: '60' },
    rate: { type: 'string', default: '10' },
    burst: { type: 'string', default: '20' },
  },
});
const NAMES = Number(args.names);
const SECONDS = Number(args.seconds);
const RATE = Number(args.rate);
const BURST = Number(args.burst);
const REDIS_URL = process.env.CERTKEEPER_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const PREFIX = 'benchburst:';
const MiB = 2 ** 20;
const CHILD = fileURLToPath(new URL('./lib/fleet-keeper.mjs', import.meta.url));
let procs: PlainProcess[] = [];
onTermination(async () => {
  await Promise.all(procs.map((p) => p.stop()));
  await cleanupRedis(REDIS_URL, PREFIX);
});

interface Outcome {
  ok: boolean;
  ms: number;
  at: number;
  reason?: string;
}

async function openLoop(port: number, name: (i: number) => string, count: number, seconds: number): Promise<Outcome[]> {
  const start = performance.now();
  const outcomes: Promise<Outcome>[] = [];
  for (let i = 0; i < count; i++) {
    const due = start + (i * seconds * 1000) / count;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    const at = performance.now() - start;
    outcomes.push(handshakeOnce(port, name(i), true, 15_000).then((o) => (o.ok ? { ok: true, ms: o.ms, at } : { ok: false, ms: performance.now() - start - at, at, reason: o.reason })));
  }
  return Promise.all(outcomes);
}

async function main(): Promise<void> {
  const loadBefore = loadAverage();
  await cleanupRedis(REDIS_URL, PREFIX);
  const ca = createBenchCa();
  const statik = await startPlainProcess(CHILD, [JSON.stringify({ mode: 'static', certPem: leafChainPem(ca, 'static.bench.test', 1), keyPem: ca.leafKeyPem })], 30_000);
  procs.push(statik);
  const rateLimit = { capacity: BURST, refillAmount: RATE, refillIntervalMs: 1000 };
  const keeper = await startPlainProcess(
    CHILD,
    [JSON.stringify({ mode: 'keeper', backend: 'redis', url: REDIS_URL, prefix: PREFIX, names: 0, onDemand: { rateLimit, timeoutMs: 10_000 } })],
    60_000,
    ['--expose-gc'],
  );
  procs.push(keeper);
  const port = (keeper.ready as { port: number }).port;
  const rssStart = (keeper.ready as { rss: number }).rss;

  // Baseline: full handshakes to a static server, a few, one at a time.
  const staticMs: number[] = [];
  for (let i = 0; i < 100; i++) {
    const o = await handshakeOnce((statik.ready as { port: number }).port, 'static.bench.test', true, 15_000);
    if (o.ok) staticMs.push(o.ms);
  }

  const rss: number[] = [];
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      await new Promise((r) => setTimeout(r, 2000));
      const s = await keeper.request<{ rss: number }>('stats');
      rss.push(s.rss);
    }
  })();
  const t0 = performance.now();
  const outcomes = await openLoop(port, (i) => `b${i}.burst.test`, NAMES, SECONDS);
  const elapsedS = (performance.now() - t0) / 1000;
  sampling = false;
  await sampler;
  const stats = await keeper.request<{ rss: number; counts: Record<string, number>; unhandled: number; cache: Record<string, number>; orders: Record<string, number> }>('stats');
  const { orderTimes } = await keeper.request<{ orderTimes: number[] }>('orderTimes');
  const readyAt = (keeper.ready as { readyMs: number }).readyMs;
  await Promise.all(procs.map((p) => p.stop()));
  procs = [];
  await cleanupRedis(REDIS_URL, PREFIX);

  // Orders per window: the most in any 1 s and any 10 s, against what the bucket allows (burst + rate × window).
  const times = orderTimes.map((t) => t - readyAt).sort((a, b) => a - b);
  const maxIn = (windowMs: number): number => {
    let best = 0;
    for (let i = 0, j = 0; i < times.length; i++) {
      while ((times[i] as number) - (times[j] as number) >= windowMs) j++;
      best = Math.max(best, i - j + 1);
    }
    return best;
  };
  const spanS = times.length > 1 ? ((times[times.length - 1] as number) - (times[0] as number)) / 1000 : 0;
  const allowedTotal = BURST + RATE * Math.ceil(spanS + 1);
  const ok = outcomes.filter((o) => o.ok);
  const failed = outcomes.filter((o) => !o.ok);
  const reasons = new Map<string, number>();
  for (const f of failed) reasons.set(f.reason ?? '?', (reasons.get(f.reason ?? '?') ?? 0) + 1);
  const failP99 = percentile(failed.map((f) => f.ms), 99);
  const staticP50 = median(staticMs);
  const peakRss = Math.max(rssStart, ...rss, stats.rss);
  const rows: ResultRow[] = [
    {
      metric: `orders started (${NAMES} new names in ${SECONDS} s, decide() allows all)`,
      value: `${times.length} (${(times.length / Math.max(1, spanS)).toFixed(1)}/s over ${spanS.toFixed(0)} s)`,
      baseline: `bucket allows ${allowedTotal} (burst ${BURST} + ${RATE}/s)`,
      ratio: (times.length / allowedTotal).toFixed(3),
      target: '≤ 1',
      met: times.length <= allowedTotal,
    },
    { metric: 'most orders in any 1 s / any 10 s', value: `${maxIn(1000)} / ${maxIn(10_000)}`, baseline: `allowed ${BURST + RATE} / ${BURST + 10 * RATE}`, target: 'within', met: maxIn(1000) <= BURST + RATE && maxIn(10_000) <= BURST + 10 * RATE },
    { metric: 'handshakes served a new certificate', value: String(ok.length), baseline: `p50 ${median(ok.map((o) => o.ms)).toFixed(1)} ms, p99 ${percentile(ok.map((o) => o.ms), 99).toFixed(1)} ms` },
    {
      metric: 'handshakes beyond the rate: time to fail, p50 / p99',
      value: `${median(failed.map((f) => f.ms)).toFixed(1)} / ${failP99.toFixed(1)} ms (${failed.length} failed)`,
      baseline: `static full handshake p50 ${staticP50.toFixed(1)} ms`,
      ratio: (failP99 / staticP50).toFixed(2),
      target: 'fast (p99 ≤ 100 ms)',
      met: failed.length === 0 || failP99 <= 100,
    },
    { metric: 'keeper RSS, start → peak → end', value: `${(rssStart / MiB).toFixed(0)} → ${(peakRss / MiB).toFixed(0)} → ${(stats.rss / MiB).toFixed(0)} MiB`, target: 'bounded (peak ≤ 512 MiB)', met: peakRss <= 512 * MiB },
    { metric: 'unhandled errors in the keeper process', value: String(stats.unhandled), target: '0', met: stats.unhandled === 0 },
  ];
  emitResult({
    bench: 'on-demand-burst',
    rows,
    notes: [
      `internal issuer (no network CA: the limiter sets the pace), Redis storage; rateLimit ${JSON.stringify(rateLimit)}; the client offered ${(NAMES / SECONDS).toFixed(1)} new names/s for ${elapsedS.toFixed(0)} s (open loop, one handshake per name)`,
      `failures by client-side reason: ${JSON.stringify(Object.fromEntries(reasons))}; keeper counts ${JSON.stringify(stats.counts)}; cache ${JSON.stringify(stats.cache)}`,
      `load average before ${loadBefore}, after ${loadAverage()} (2 cores shared with other engineers' work)`,
    ],
  });
}

await main();
