/**
 * On-demand burst (issue 20): 5,000 new names in 60 s against a keeper whose
 * `decide()` allows every name. What matters is the order rate limit: orders
 * never above the configured rate, handshakes beyond it fail fast, RSS bounded,
 * no unhandled error.
 *
 * Semantics measured: the on-demand bucket bounds order STARTS. In any window of
 * k refill intervals at most capacity + k x refillAmount orders start, counted
 * twice: on the event side (`cert_obtaining`, emitted where the token leaves the
 * bucket) and on the CA side (when the issuer's issue() was actually called: the
 * internal issuer sits behind a recorder in bench/lib/burst-keeper.mjs).
 *
 * The keeper runs the BUILT package (dist/) in its own `node` process with the
 * internal issuer (no network CA: an order is a key and a signature, so the
 * limiter, not a CA, sets the pace) and Redis storage under the prefix
 * `benchburst-<pid>:` (removed at the end). The client opens one handshake per
 * new name on a fixed schedule (open loop: --names over --seconds, whatever the
 * answers), each with SNI of a name never seen before.
 *
 * Then the refusal path alone: a second keeper whose bucket is empty for an hour
 * gets --refusals handshakes for new names (8 in flight); its CPU per refused
 * handshake (process.cpuUsage in the keeper) is compared with a plain Node TLS
 * server whose SNICallback refuses at once, driven the same way.
 *
 * Baselines: the configured rate (orders), handshakes to a static-certificate
 * Node server made the same way (failure latency vs a full handshake), the
 * refusing Node server (CPU per refusal).
 *
 *   node --import tsx bench/on-demand-burst.ts [--names 5000] [--seconds 60] [--rate 10] [--burst 20] [--refusals 2000]
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
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
    refusals: { type: 'string', default: '2000' },
  },
});
const NAMES = Number(args.names);
const SECONDS = Number(args.seconds);
const RATE = Number(args.rate);
const BURST = Number(args.burst);
const REFUSALS = Number(args.refusals);
const REDIS_URL = process.env.CERTKEEPER_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const PREFIX = `benchburst-${process.pid}:`;
const MiB = 2 ** 20;
const STATIC_CHILD = fileURLToPath(new URL('./lib/fleet-keeper.mjs', import.meta.url));
const CHILD = fileURLToPath(new URL('./lib/burst-keeper.mjs', import.meta.url));
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

interface KeeperStats {
  rss: number;
  cpuMs: number;
  unhandled: number;
  loopDelayMs: { p50: number; p99: number; max: number };
  counts: Record<string, number>;
  cache: Record<string, number>;
  orders: Record<string, number>;
}

/** The most of `times` (sorted, ms) in any half-open window of `windowMs`. */
function maxIn(times: readonly number[], windowMs: number): number {
  let best = 0;
  for (let i = 0, j = 0; i < times.length; i++) {
    while ((times[i] as number) - (times[j] as number) >= windowMs) j++;
    best = Math.max(best, i - j + 1);
  }
  return best;
}

/** `count` handshakes for new names, `inFlight` at a time; returns the failures' times to fail. */
async function closedLoop(port: number, name: (i: number) => string, count: number, inFlight: number): Promise<{ failMs: number[]; ok: number }> {
  const failMs: number[] = [];
  let ok = 0;
  let next = 0;
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < count) {
        const t0 = performance.now();
        const o = await handshakeOnce(port, name(next++), false, 15_000);
        if (o.ok) ok++;
        else failMs.push(performance.now() - t0);
      }
    }),
  );
  return { failMs, ok };
}

/** Keeper CPU per refused handshake, and the client-side time to fail, for a server that refuses every new name. */
async function refusalCost(server: PlainProcess, prefix: string): Promise<{ cpuUsPer: number; p50: number; p99: number; refused: number }> {
  const port = (server.ready as { port: number }).port;
  await closedLoop(port, (i) => `${prefix}warm${i}.refuse.test`, 200, 8);
  const before = await server.request<{ cpuMs: number }>('stats');
  const { failMs } = await closedLoop(port, (i) => `${prefix}${i}.refuse.test`, REFUSALS, 8);
  const after = await server.request<{ cpuMs: number }>('stats');
  return { cpuUsPer: ((after.cpuMs - before.cpuMs) * 1000) / Math.max(1, failMs.length), p50: median(failMs), p99: percentile(failMs, 99), refused: failMs.length };
}

async function main(): Promise<void> {
  const loadBefore = loadAverage();
  await cleanupRedis(REDIS_URL, PREFIX);
  const ca = createBenchCa();
  const statik = await startPlainProcess(STATIC_CHILD, [JSON.stringify({ mode: 'static', certPem: leafChainPem(ca, 'static.bench.test', 1), keyPem: ca.leafKeyPem })], 30_000);
  procs.push(statik);
  const rateLimit = { capacity: BURST, refillAmount: RATE, refillIntervalMs: 1000 };
  const keeper = await startPlainProcess(CHILD, [JSON.stringify({ mode: 'keeper', url: REDIS_URL, prefix: PREFIX, rateLimit, timeoutMs: 10_000 })], 60_000);
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
  await keeper.request('resetLoopDelay');
  const burstCpu0 = (await keeper.request<{ cpuMs: number }>('stats')).cpuMs;
  const clientLoop = monitorEventLoopDelay({ resolution: 10 });
  clientLoop.enable();
  const t0 = performance.now();
  const outcomes = await openLoop(port, (i) => `b${i}.burst.test`, NAMES, SECONDS);
  const elapsedS = (performance.now() - t0) / 1000;
  sampling = false;
  await sampler;
  const stats = await keeper.request<KeeperStats>('stats');
  clientLoop.disable();
  const { orderTimes, issuerTimes } = await keeper.request<{ orderTimes: number[]; issuerTimes: number[] }>('times');
  const { refusedMs } = await keeper.request<{ refusedMs: number[] }>('refusedMs');
  await keeper.stop();
  procs = procs.filter((p) => p !== keeper);

  // The refusal path alone: an empty bucket (one token an hour, taken by the first name), against Node refusing in SNICallback.
  const refusingKeeper = await startPlainProcess(CHILD, [JSON.stringify({ mode: 'keeper', url: REDIS_URL, prefix: `${PREFIX}r:`, rateLimit: { capacity: 1, refillAmount: 1, refillIntervalMs: 3_600_000 } })], 60_000);
  procs.push(refusingKeeper);
  await handshakeOnce((refusingKeeper.ready as { port: number }).port, 'first.refuse.test', false, 15_000);
  const refuser = await startPlainProcess(CHILD, [JSON.stringify({ mode: 'refuse' })], 30_000);
  procs.push(refuser);
  const floor = await refusalCost(refuser, 'n');
  const ours = await refusalCost(refusingKeeper, 'k');
  const refusingStats = await refusingKeeper.request<KeeperStats>('stats');
  await Promise.all(procs.map((p) => p.stop()));
  procs = [];
  await cleanupRedis(REDIS_URL, PREFIX);

  const readyAt = (keeper.ready as { readyMs: number }).readyMs;
  const starts = orderTimes.map((t) => t - readyAt).sort((a, b) => a - b);
  const received = issuerTimes.map((t) => t - readyAt).sort((a, b) => a - b);
  const spanS = starts.length > 1 ? ((starts[starts.length - 1] as number) - (starts[0] as number)) / 1000 : 0;
  // A window of k whole intervals holds at most k refills (they are at least an interval apart).
  const allowedTotal = BURST + RATE * Math.ceil(spanS);
  const allowed1 = BURST + RATE;
  const allowed10 = BURST + 10 * RATE;
  const within = (t: readonly number[]): boolean => maxIn(t, 1000) <= allowed1 && maxIn(t, 10_000) <= allowed10;
  // Start to CA: the gap between a token leaving the bucket and the issuer receiving the order (paired in order).
  const gaps = received.map((t, k) => t - (starts[k] ?? t));
  const ok = outcomes.filter((o) => o.ok);
  const failed = outcomes.filter((o) => !o.ok);
  const reasons = new Map<string, number>();
  for (const f of failed) reasons.set(f.reason ?? '?', (reasons.get(f.reason ?? '?') ?? 0) + 1);
  const failP99 = percentile(failed.map((f) => f.ms), 99);
  const staticP50 = median(staticMs);
  const peakRss = Math.max(rssStart, ...rss, stats.rss);
  const burstCpuS = (stats.cpuMs - burstCpu0) / 1000;
  const rows: ResultRow[] = [
    {
      metric: `orders started (${NAMES} new names in ${SECONDS} s, decide() allows all)`,
      value: `${starts.length} (${(starts.length / Math.max(1, spanS)).toFixed(1)}/s over ${spanS.toFixed(0)} s); issuer received ${received.length}`,
      baseline: `bucket allows ${allowedTotal} (burst ${BURST} + ${RATE}/s)`,
      ratio: (starts.length / allowedTotal).toFixed(3),
      target: '≤ 1',
      met: starts.length <= allowedTotal && received.length <= allowedTotal,
    },
    { metric: 'most orders started in any 1 s / any 10 s (cert_obtaining, where the token is taken)', value: `${maxIn(starts, 1000)} / ${maxIn(starts, 10_000)}`, baseline: `allowed ${allowed1} / ${allowed10}`, target: 'within', met: within(starts) },
    { metric: 'most orders the issuer received in any 1 s / any 10 s (CA side)', value: `${maxIn(received, 1000)} / ${maxIn(received, 10_000)}`, baseline: `allowed ${allowed1} / ${allowed10}`, target: 'within', met: within(received) },
    { metric: 'order start → issuer received', value: `p50 ${median(gaps).toFixed(1)} ms, p99 ${percentile(gaps, 99).toFixed(1)} ms, max ${Math.max(0, ...gaps).toFixed(0)} ms` },
    { metric: 'handshakes served a new certificate', value: String(ok.length), baseline: `p50 ${median(ok.map((o) => o.ms)).toFixed(1)} ms, p99 ${percentile(ok.map((o) => o.ms), 99).toFixed(1)} ms` },
    {
      metric: 'handshakes beyond the rate: time to fail, p50 / p99 (during the burst)',
      value: `${median(failed.map((f) => f.ms)).toFixed(1)} / ${failP99.toFixed(1)} ms (${failed.length} failed)`,
      baseline: `static full handshake p50 ${staticP50.toFixed(1)} ms`,
      ratio: (failP99 / staticP50).toFixed(2),
      target: 'fast (p99 ≤ 100 ms)',
      met: failed.length === 0 || failP99 <= 100,
    },
    {
      metric: 'the same refusals on the keeper side (connection accepted → TLS error), p50 / p99',
      value: `${median(refusedMs).toFixed(1)} / ${percentile(refusedMs, 99).toFixed(1)} ms (${refusedMs.length})`,
      baseline: `client: ${failed.filter((f) => f.ms > 1000).length} took > 1 s; client event-loop delay p99 ${(clientLoop.percentile(99) / 1e6).toFixed(0)} ms, max ${(clientLoop.max / 1e6).toFixed(0)} ms`,
    },
    { metric: 'keeper event-loop delay during the burst, p50 / p99 / max', value: `${stats.loopDelayMs.p50.toFixed(1)} / ${stats.loopDelayMs.p99.toFixed(1)} / ${stats.loopDelayMs.max.toFixed(0)} ms`, baseline: `keeper CPU ${burstCpuS.toFixed(1)} s over ${elapsedS.toFixed(0)} s` },
    {
      metric: `refusal alone: keeper CPU per refused handshake (${ours.refused} new names, empty bucket, 8 in flight)`,
      value: `${ours.cpuUsPer.toFixed(0)} µs; time to fail p50 ${ours.p50.toFixed(1)} / p99 ${ours.p99.toFixed(1)} ms`,
      baseline: `Node refusing in SNICallback ${floor.cpuUsPer.toFixed(0)} µs; p50 ${floor.p50.toFixed(1)} / p99 ${floor.p99.toFixed(1)} ms`,
      ratio: (ours.cpuUsPer / floor.cpuUsPer).toFixed(2),
      target: 'p99 ≤ 100 ms',
      met: ours.p99 <= 100,
    },
    { metric: 'keeper RSS, start → peak → end', value: `${(rssStart / MiB).toFixed(0)} → ${(peakRss / MiB).toFixed(0)} → ${(stats.rss / MiB).toFixed(0)} MiB`, target: 'bounded (peak ≤ 512 MiB)', met: peakRss <= 512 * MiB },
    { metric: 'unhandled errors in the keeper processes', value: String(stats.unhandled + refusingStats.unhandled), target: '0', met: stats.unhandled + refusingStats.unhandled === 0 },
  ];
  emitResult({
    bench: 'on-demand-burst',
    rows,
    notes: [
      `internal issuer (no network CA: the limiter sets the pace), Redis storage; rateLimit ${JSON.stringify(rateLimit)}; the client offered ${(NAMES / SECONDS).toFixed(1)} new names/s for ${elapsedS.toFixed(0)} s (open loop, one handshake per name)`,
      `failures by client-side reason: ${JSON.stringify(Object.fromEntries(reasons))}; keeper counts ${JSON.stringify(stats.counts)}; cache ${JSON.stringify(stats.cache)}; orders ${JSON.stringify(stats.orders)}`,
      `refusal phase: keeper counts ${JSON.stringify(refusingStats.counts)}; event-loop delay p99 ${refusingStats.loopDelayMs.p99.toFixed(1)} ms`,
      `load average before ${loadBefore}, after ${loadAverage()} (2 cores shared with other engineers' work)`,
    ],
  });
}

await main();
