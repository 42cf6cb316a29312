/**
 * Fleet scale (issue 20): 1,000,000 names stored in Redis and in PostgreSQL.
 * Per backend:
 *
 *   1. load   bulk loader (bench/lib/bulk-load.ts); baseline: generating the
 *             same sets without writing them (measured on a sample, scaled).
 *   2. start  a fresh `node` process running the BUILT package (dist/) calls
 *             manageSync with every name and listens; ready time (from process
 *             start) and RSS. Baseline: `node -e 0`.
 *   3. lazy   handshakes for names not loaded yet (each reads its set from
 *             storage and builds its context), one at a time; p50/p99 against
 *             the same names once cached and a static-certificate Node server.
 *   4. warm   the background sidecar reads that schedule every renewal: time
 *             until all N are scheduled (or the deadline), RSS sampled.
 *   5. day    handshakes for names drawn from a Zipf distribution for
 *             --day-seconds (real time, not an hour: stated in the notes), cache
 *             capacity --capacity, RSS sampled; evictions, hit ratio, p99.
 *   6. tick   the keeper's fake clock moves 60 days in 60 steps with nothing
 *             due: scheduler ticks and heap entries they looked at.
 *
 *   node --import tsx bench/fleet-million.ts [--names 1000000] [--backends redis,postgres]
 *     [--capacity 10000] [--day-seconds 180] [--day-until <ISO time>] [--lazy 300] [--start-runs 2] [--keep] [--reuse] [--prefix bench1m:] [--schema bench1m] [--phases lazy,warm,day,tick] [--load-only]
 *
 * Data lives under the Redis prefix `bench1m:` (--prefix) and the PostgreSQL schema
 * `bench1m` (db `test`), removed at the end unless --keep (then --reuse skips
 * the load next time). Targets: ready ≤ 10 s, RSS ≤ 1 GiB, lazy p99 ≤ 20 ms,
 * an idle tick looks at O(1) entries, no RSS growth over the day.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import pg from 'pg';
import { bulkLoadPostgres, bulkLoadRedis, checkGeneratedSample, cleanupPostgres, cleanupRedis, generateSets } from './lib/bulk-load.js';
import { benchName, createBenchCa, leafChainPem } from './lib/fabricate.js';
import { startPlainProcess, type PlainProcess } from './lib/plain-process.js';
import { emitResult, loadAverage, median, onTermination, percentile, type ResultRow } from './lib/report.js';
import { handshakeOnce, tlsLoad } from './lib/tls-load.js';

const { values: args } = parseArgs({
  options: {
    names: { type: 'string', default: '1000000' },
    backends: { type: 'string', default: 'redis,postgres' },
    capacity: { type: 'string', default: '1000' },
    'day-seconds': { type: 'string', default: '240' },
    'day-concurrency': { type: 'string', default: '4' },
    // Ends the day at this wall-clock time (ISO 8601) if that comes before --day-seconds: a long day that must finish by a deadline.
    'day-until': { type: 'string' },
    'zipf-s': { type: 'string', default: '1' },
    lazy: { type: 'string', default: '300' },
    'start-runs': { type: 'string', default: '2' },
    'warmup-timeout-seconds': { type: 'string', default: '600' },
    keep: { type: 'boolean', default: false },
    reuse: { type: 'boolean', default: false },
    // Where the data lives: several people can hold their own 1M copy side by side (Redis key prefix, with its colon).
    prefix: { type: 'string', default: 'bench1m:' },
    schema: { type: 'string', default: 'bench1m' },
    // Load (or check a --reuse store) and stop; implies --keep.
    'load-only': { type: 'boolean', default: false },
    // Which phases to run after the start (start itself always runs).
    phases: { type: 'string', default: 'lazy,warm,day,tick' },
  },
});
const N = Number(args.names);
const REDIS_URL = process.env.CERTKEEPER_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const POSTGRES_URL = process.env.CERTKEEPER_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const PREFIX = args.prefix;
const SCHEMA = args.schema;
if (args['load-only']) args.keep = true;
const PHASES = new Set(args.phases.split(','));
const MANIFEST_KEY = `${PREFIX}manifest`;
const MiB = 2 ** 20;
const GiB = 2 ** 30;
const CHILD = fileURLToPath(new URL('./lib/fleet-keeper.mjs', import.meta.url));
const rows: ResultRow[] = [];
const notes: string[] = [];
let current: PlainProcess[] = [];
onTermination(async () => {
  await Promise.all(current.map((p) => p.stop()));
  if (!args.keep) await cleanup(args.backends.split(','));
});

const fmtMs = (ms: number): string => (ms >= 10_000 ? `${(ms / 1000).toFixed(1)} s` : ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(2)} ms`);
const mib = (b: number): string => `${(b / MiB).toFixed(0)} MiB`;

async function cleanup(backends: string[]): Promise<void> {
  if (backends.includes('redis')) console.log(`# redis: removed ${await cleanupRedis(REDIS_URL, PREFIX)} keys under ${PREFIX}`);
  if (backends.includes('postgres')) {
    await cleanupPostgres(POSTGRES_URL, SCHEMA);
    console.log(`# postgres: dropped schema ${SCHEMA}`);
  }
}

/** Generation alone (no writes), on a sample, scaled to N: the floor of any loader writing these sets. */
function generationFloorMs(): number {
  const sample = Math.min(N, 20_000);
  const t0 = performance.now();
  for (const set of generateSets(sample)) void set;
  return ((performance.now() - t0) * N) / sample;
}

async function loaded(backend: string): Promise<boolean> {
  if (backend === 'redis') {
    const client = new Redis(REDIS_URL);
    try {
      return (await client.get(MANIFEST_KEY)) === String(N);
    } finally {
      client.disconnect();
    }
  }
  const client = new pg.Client({ connectionString: POSTGRES_URL });
  await client.connect();
  try {
    const { rows: r } = await client.query<{ d: string | null }>(`SELECT obj_description(to_regnamespace($1)::oid, 'pg_namespace') AS d`, [SCHEMA]);
    return r[0]?.d === `names=${N}`;
  } catch {
    return false;
  } finally {
    await client.end();
  }
}

async function load(backend: string, floorMs: number): Promise<void> {
  if (args.reuse && (await loaded(backend))) {
    notes.push(`${backend}: ${N} names reused from an earlier --keep run (no load timed)`);
    return;
  }
  console.log(`# ${backend}: loading ${N} names...`);
  const progress = (done: number, ms: number): void => console.log(`  ${done} / ${N} in ${(ms / 1000).toFixed(0)} s`);
  let ms: number;
  let size: string;
  if (backend === 'redis') {
    await cleanupRedis(REDIS_URL, PREFIX);
    ms = await bulkLoadRedis(REDIS_URL, PREFIX, N, { onProgress: progress });
    const client = new Redis(REDIS_URL);
    await client.set(MANIFEST_KEY, String(N));
    const info = await client.info('memory');
    client.disconnect();
    size = `Redis used_memory ${/used_memory_human:(\S+)/.exec(info)?.[1] ?? '?'} (whole shared instance)`;
  } else {
    const r = await bulkLoadPostgres(POSTGRES_URL, SCHEMA, N, { onProgress: progress });
    ms = r.ms;
    const client = new pg.Client({ connectionString: POSTGRES_URL });
    await client.connect();
    await client.query(`COMMENT ON SCHEMA "${SCHEMA}" IS 'names=${N}'`);
    const { rows: s } = await client.query<{ size: string }>(`SELECT pg_size_pretty(pg_total_relation_size('"${SCHEMA}".certkeeper_storage')) AS size`);
    await client.end();
    size = `table ${s[0]?.size} (COPY ${fmtMs(r.copyMs)}, primary key + VACUUM ANALYZE ${fmtMs(r.indexMs)})`;
  }
  console.log(`# ${backend}: loaded in ${fmtMs(ms)}; ${size}`);
  rows.push({ metric: `${backend}: bulk load of ${N} sets`, value: fmtMs(ms), baseline: `generation alone ${fmtMs(floorMs)}`, ratio: (ms / floorMs).toFixed(2), target: 'minutes, not hours', met: ms < 30 * 60_000 });
  notes.push(`${backend} store: ${size}`);
}

function bareNodeMs(): number {
  const times: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    spawnSync(process.execPath, ['-e', '0']);
    times.push(performance.now() - t0);
  }
  return median(times);
}

function childOptions(backend: string, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ mode: 'keeper', backend, url: backend === 'redis' ? REDIS_URL : POSTGRES_URL, prefix: PREFIX, schema: SCHEMA, names: N, cacheCapacity: Number(args.capacity), fakeClock: true, ...extra });
}

interface Ready {
  port: number;
  readyMs: number;
  manageMs: number;
  importMs: number;
  manageCpuMs: number;
  rss: number;
  heapUsed: number;
}
interface Stats {
  rss: number;
  heapUsed: number;
  cache: { hits: number; misses: number; loads: number; evictions: number; certificates?: number; [k: string]: number | undefined };
  scheduler: { renewals: { size: number; ticks: number; lastTickExamined: number; totalExamined: number; fired: number } };
  counts: Record<string, number>;
  unhandled: number;
}

/** Maps a Zipf rank to a name index with a bijection, so popular names are spread over the store. */
const rankToIndex = (rank: number): number => (rank * 7919 + 13) % N;

function zipfSampler(s: number): () => number {
  const cdf = new Float64Array(N);
  let total = 0;
  for (let k = 0; k < N; k++) {
    total += 1 / (k + 1) ** s;
    cdf[k] = total;
  }
  return () => {
    const u = Math.random() * total;
    let lo = 0;
    let hi = N - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((cdf[mid] as number) < u) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
}

async function sequentialHandshakes(port: number, names: string[]): Promise<{ latencies: number[]; failed: Map<string, number> }> {
  const latencies: number[] = [];
  const failed = new Map<string, number>();
  for (const name of names) {
    const outcome = await handshakeOnce(port, name, true, 15_000);
    if (outcome.ok) latencies.push(outcome.ms);
    else failed.set(outcome.reason, (failed.get(outcome.reason) ?? 0) + 1);
  }
  return { latencies, failed };
}

async function stopKeeper(keeper: PlainProcess): Promise<void> {
  await keeper.stop();
  current = current.filter((p) => p !== keeper);
}

async function runBackend(backend: string, bareMs: number, staticServer: PlainProcess): Promise<void> {
  // ---- start ----
  const startRuns = Number(args['start-runs']);
  const ready: Ready[] = [];
  let keeper: PlainProcess | undefined;
  for (let run = 0; run < startRuns; run++) {
    keeper = await startPlainProcess(CHILD, [childOptions(backend)], 300_000, ['--expose-gc']);
    current.push(keeper);
    const r = keeper.ready as unknown as Ready;
    ready.push(r);
    console.log(`# ${backend} start ${run + 1}: ready ${fmtMs(r.readyMs)} after process start (modules ${fmtMs(r.importMs)}, manageSync ${fmtMs(r.manageMs)}, CPU ${fmtMs(r.manageCpuMs)}), RSS ${mib(r.rss)}, heap ${mib(r.heapUsed)}`);
    if (run < startRuns - 1) {
      await keeper.stop();
      current = current.filter((p) => p !== keeper);
    }
  }
  if (!keeper) return;
  const readyMedian = median(ready.map((r) => r.readyMs));
  const rssMedian = median(ready.map((r) => r.rss));
  rows.push({ metric: `${backend}: keeper ready (process start → manageSync(${N}) resolved, listening)`, value: fmtMs(readyMedian), baseline: `node -e 0 ${fmtMs(bareMs)}`, ratio: (readyMedian / bareMs).toFixed(1), target: '≤ 10 s', met: readyMedian <= 10_000 });
  rows.push({ metric: `${backend}: RSS when ready`, value: mib(rssMedian), target: '≤ 1 GiB', met: rssMedian <= GiB });
  const port = (keeper.ready as unknown as Ready).port;

  if (!PHASES.has('lazy')) return stopKeeper(keeper);
  // ---- lazy handshakes (names not loaded yet), then cached, then the static server ----
  const lazyCount = Number(args.lazy);
  // Distinct names spread over the store (9973 is prime, N a product of 2s and 5s: a bijection).
  const lazyNames = Array.from({ length: lazyCount }, (_, i) => benchName((i * 9973 + 17) % N));
  const lazy = await sequentialHandshakes(port, lazyNames);
  const cached = await sequentialHandshakes(port, lazyNames);
  const staticPort = (staticServer.ready as { port: number }).port;
  const plain = await sequentialHandshakes(staticPort, lazyNames.map(() => 'static.bench.test'));
  const p99 = (l: number[]): number => percentile(l, 99);
  console.log(`# ${backend} lazy: p50 ${fmtMs(percentile(lazy.latencies, 50))} p99 ${fmtMs(p99(lazy.latencies))}; cached p50 ${fmtMs(percentile(cached.latencies, 50))} p99 ${fmtMs(p99(cached.latencies))}; static p99 ${fmtMs(p99(plain.latencies))}`);
  rows.push({ metric: `${backend}: handshake p99, name not loaded yet, during the warm-up (${lazy.latencies.length} names, one at a time)`, value: fmtMs(p99(lazy.latencies)), baseline: `static server ${fmtMs(p99(plain.latencies))}`, ratio: (p99(lazy.latencies) / p99(plain.latencies)).toFixed(2), target: '≤ 20 ms', met: p99(lazy.latencies) <= 20 });
  rows.push({ metric: `${backend}: handshake p99, same names cached, during the warm-up`, value: fmtMs(p99(cached.latencies)), baseline: `static server ${fmtMs(p99(plain.latencies))}`, ratio: (p99(cached.latencies) / p99(plain.latencies)).toFixed(2) });
  const lazyFailed = [...lazy.failed, ...cached.failed].reduce((a, [, n]) => a + n, 0);
  if (lazyFailed > 0) rows.push({ metric: `${backend}: failed handshakes (lazy + cached)`, value: `${lazyFailed} ${JSON.stringify(Object.fromEntries([...lazy.failed, ...cached.failed]))}`, target: '0', met: false });

  if (!PHASES.has('warm')) return stopKeeper(keeper);
  // ---- warm-up: every renewal scheduled ----
  const warmStart = performance.now();
  const deadline = warmStart + Number(args['warmup-timeout-seconds']) * 1000;
  let stats = await keeper.request<Stats>('stats');
  let peakRss = stats.rss;
  while (stats.scheduler.renewals.size < N && performance.now() < deadline) {
    await new Promise((r) => setTimeout(r, 5000));
    stats = await keeper.request<Stats>('stats');
    peakRss = Math.max(peakRss, stats.rss);
    console.log(`  warm-up: ${stats.scheduler.renewals.size} / ${N} scheduled, RSS ${mib(stats.rss)}`);
  }
  const warmMs = performance.now() - warmStart;
  const scheduled = stats.scheduler.renewals.size;
  rows.push({
    metric: `${backend}: background warm-up (every renewal scheduled)`,
    value: scheduled >= N ? fmtMs(warmMs) : `${scheduled} of ${N} after ${fmtMs(warmMs)}`,
    baseline: '',
    ratio: `${((scheduled / warmMs) * 1000).toFixed(0)} names/s`,
  });
  rows.push({ metric: `${backend}: peak RSS during warm-up`, value: mib(peakRss), target: '≤ 1 GiB', met: peakRss <= GiB });

  // ---- lazy handshakes again once the warm-up is over (other names): the steady state ----
  const lazyAfterNames = Array.from({ length: lazyCount }, (_, i) => benchName(((i + lazyCount) * 9973 + 17) % N));
  const lazyAfter = await sequentialHandshakes(port, lazyAfterNames);
  const cachedAfter = await sequentialHandshakes(port, lazyAfterNames);
  const plainAfter = await sequentialHandshakes(staticPort, lazyAfterNames.map(() => 'static.bench.test'));
  console.log(`# ${backend} lazy after warm-up: p50 ${fmtMs(percentile(lazyAfter.latencies, 50))} p99 ${fmtMs(p99(lazyAfter.latencies))}; cached p99 ${fmtMs(p99(cachedAfter.latencies))}; static p99 ${fmtMs(p99(plainAfter.latencies))}`);
  rows.push({ metric: `${backend}: handshake p99, name not loaded yet, after the warm-up`, value: fmtMs(p99(lazyAfter.latencies)), baseline: `static server ${fmtMs(p99(plainAfter.latencies))}`, ratio: (p99(lazyAfter.latencies) / p99(plainAfter.latencies)).toFixed(2), target: '≤ 20 ms', met: p99(lazyAfter.latencies) <= 20 });
  rows.push({ metric: `${backend}: handshake p99, same names cached, after the warm-up`, value: fmtMs(p99(cachedAfter.latencies)), baseline: `static server ${fmtMs(p99(plainAfter.latencies))}`, ratio: (p99(cachedAfter.latencies) / p99(plainAfter.latencies)).toFixed(2) });
  stats = await keeper.request<Stats>('stats');

  if (!PHASES.has('day')) return stopKeeper(keeper);
  // ---- Zipf day ----
  const sample = zipfSampler(Number(args['zipf-s']));
  const until = args['day-until'] === undefined ? Number.POSITIVE_INFINITY : (Date.parse(args['day-until']) - Date.now()) / 1000;
  const daySeconds = Math.max(60, Math.floor(Math.min(Number(args['day-seconds']), until)));
  if (daySeconds < Number(args['day-seconds'])) notes.push(`${backend}: the day was cut to ${daySeconds} s (of ${args['day-seconds']}) to end by ${args['day-until']}`);
  console.log(`# ${backend} day: ${daySeconds} s from ${new Date().toISOString()}`);
  const before = stats;
  const samples: { t: number; rss: number; heapUsed: number; external: number; arrayBuffers: number; size: number | undefined; evictions: number; load: string }[] = [];
  let stop = false;
  const sampler = (async () => {
    const t0 = performance.now();
    while (!stop) {
      await new Promise((r) => setTimeout(r, 10_000));
      if (stop) break;
      const s = await keeper.request<Stats>('stats');
      const m = s as Stats & { external: number; arrayBuffers: number };
      samples.push({ t: (performance.now() - t0) / 1000, rss: s.rss, heapUsed: s.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers, size: s.cache.certificates, evictions: s.cache.evictions, load: loadAverage() });
      console.log(`  day t=${((performance.now() - t0) / 1000).toFixed(0)} s: RSS ${mib(s.rss)}, heap ${mib(s.heapUsed)}, external ${mib(m.external)} (array buffers ${mib(m.arrayBuffers)}), load ${loadAverage()}, cache ${JSON.stringify(s.cache)}`);
    }
  })();
  const day = await tlsLoad({ port, name: () => benchName(rankToIndex(sample())), durationMs: daySeconds * 1000, concurrency: Number(args['day-concurrency']), checkName: true, handshakeTimeoutMs: 15_000 });
  stop = true;
  await sampler;
  const afterDay = await keeper.request<Stats>('stats');
  const gcd = await keeper.request<{ rss: number; heapUsed: number; external: number; arrayBuffers: number }>('gc');
  notes.push(`${backend}: after the day ${mib(afterDay.rss)} RSS, heap ${mib(afterDay.heapUsed)}, external ${mib((afterDay as Stats & { external: number }).external)}; after a forced full GC ${mib(gcd.rss)} RSS, heap ${mib(gcd.heapUsed)}, external ${mib(gcd.external)} (array buffers ${mib(gcd.arrayBuffers)})`);
  // Growth is judged once the cache is full (evicting): before that it grows by design, up to its capacity.
  const full = samples.filter((s) => s.evictions > before.cache.evictions);
  const judged = full.length >= 3 ? full : samples;
  const third = Math.max(1, Math.floor(judged.length / 3));
  const early = median(judged.slice(0, third).map((s) => s.rss));
  const late = median(judged.slice(-third).map((s) => s.rss));
  if (full.length < 3) notes.push(`${backend}: the cache did not fill (capacity ${args.capacity}) before the day's last samples: RSS compared over the whole day`);
  const hits = afterDay.cache.hits - before.cache.hits;
  const misses = afterDay.cache.misses - before.cache.misses;
  const evictions = afterDay.cache.evictions - before.cache.evictions;
  console.log(`# ${backend} day: ${day.ok} handshakes (${day.failed} failed), hits ${hits}, misses ${misses}, evictions ${evictions}, RSS first third ${mib(early)} last third ${mib(late)}, after GC ${mib(gcd.rss)} (external ${mib(gcd.external)}, array buffers ${mib(gcd.arrayBuffers)})`);
  rows.push({ metric: `${backend}: Zipf day RSS, last third vs first third of ${daySeconds} s (cache full: ${full.length} of ${samples.length} samples)`, value: mib(late), baseline: mib(early), ratio: (late / early).toFixed(3), target: 'no growth (≤ 1.05)', met: late / early <= 1.05 });
  // The JS heap alone (sampled between collections, so medians): what the keeper itself holds per name it has loaded.
  const heapEarly = median(judged.slice(0, third).map((s) => s.heapUsed));
  const heapLate = median(judged.slice(-third).map((s) => s.heapUsed));
  rows.push({ metric: `${backend}: Zipf day JS heap, last third vs first third`, value: mib(heapLate), baseline: mib(heapEarly), ratio: (heapLate / heapEarly).toFixed(3) });
  // The plateau: RSS over the second half of the day (once the cache is full), and the series every ~5 minutes.
  const secondHalf = judged.slice(Math.floor(judged.length / 2));
  if (secondHalf.length > 0) {
    const rssOf = secondHalf.map((x) => x.rss);
    rows.push({ metric: `${backend}: Zipf day RSS over its second half (min / median / max)`, value: `${mib(Math.min(...rssOf))} / ${mib(median(rssOf))} / ${mib(Math.max(...rssOf))}`, baseline: `first sample with the cache full ${mib(judged[0]?.rss ?? 0)}` });
  }
  const every = Math.max(1, Math.round(300 / 10));
  const series = samples.filter((_, i) => i % every === every - 1 || i === samples.length - 1);
  notes.push(`${backend}: day series (t: RSS / heap / external, evictions, load 1/5/15): ${series.map((x) => `${x.t.toFixed(0)} s: ${mib(x.rss)} / ${mib(x.heapUsed)} / ${mib(x.external)}, ${x.evictions - before.cache.evictions} ev, ${x.load}`).join('; ')}`);
  rows.push({
    metric: `${backend}: Zipf day handshakes (s=${args['zipf-s']}, capacity ${args.capacity})`,
    value: `${day.ok} ok, ${day.failed} failed, p99 ${fmtMs(percentile(day.latencies, 99))}`,
    baseline: `hit ratio ${(hits / Math.max(1, hits + misses)).toFixed(3)}, ${evictions} evictions`,
    target: '0 failed',
    met: day.failed === 0,
  });

  if (!PHASES.has('tick')) return stopKeeper(keeper);
  // ---- idle scheduler tick ----
  const tick = await keeper.request<{ before: Stats['scheduler']['renewals']; after: Stats['scheduler']['renewals']; cpuUs: number; counts: Record<string, number> }>('advance', { ms: 60 * 86_400_000, steps: 60 });
  const ticks = tick.after.ticks - tick.before.ticks;
  const examined = tick.after.totalExamined - tick.before.totalExamined;
  // A tick that fires k entries looks at k + 1; what an idle tick costs is the rest.
  const fired = tick.after.fired - tick.before.fired;
  const idleExamined = examined - fired;
  console.log(`# ${backend} idle: 60 days, ${ticks} ticks looked at ${examined} entries of ${tick.after.size} scheduled, ${fired} fired (${JSON.stringify(tick.counts)}), CPU ${(tick.cpuUs / 1000).toFixed(1)} ms`);
  if (fired > 0) notes.push(`${backend}: ${fired} entries fired during the 60 idle days (not idle work: retries of failures): ${JSON.stringify((await keeper.request<{ failures: unknown }>('stats')).failures)}`);
  rows.push({
    metric: `${backend}: idle scheduler ticks over 60 days (${tick.after.size} scheduled)`,
    value: `${ticks} ticks, ${examined} entries looked at (${fired} fired)`,
    baseline: `a scan per tick: ${ticks * tick.after.size}`,
    ratio: ticks > 0 ? `${(idleExamined / ticks).toFixed(2)} per tick besides those fired` : 'no tick',
    target: 'O(1) per idle tick',
    met: ticks > 0 && idleExamined <= ticks,
  });
  const final = await keeper.request<Stats>('stats');
  if (final.unhandled > 0 || final.counts.obtaining) notes.push(`${backend}: ${final.unhandled} unhandled errors, ${final.counts.obtaining} orders (expected 0)`);
  notes.push(`${backend}: cache at the end ${JSON.stringify(final.cache)}; counts ${JSON.stringify(final.counts)}`);
  await keeper.stop();
  current = current.filter((p) => p !== keeper);
}

async function main(): Promise<void> {
  const loadBefore = loadAverage();
  const backends = args.backends.split(',');
  checkGeneratedSample();
  const floorMs = generationFloorMs();
  const bareMs = bareNodeMs();
  const ca = createBenchCa();
  const staticServer = await startPlainProcess(CHILD, [JSON.stringify({ mode: 'static', certPem: leafChainPem(ca, 'static.bench.test', 1), keyPem: ca.leafKeyPem })], 30_000);
  current.push(staticServer);
  try {
    for (const backend of backends) {
      const loadStart = loadAverage();
      await load(backend, floorMs);
      if (!args['load-only']) await runBackend(backend, bareMs, staticServer);
      notes.push(`${backend}: load average at its start ${loadStart}, at its end ${loadAverage()}`);
    }
  } finally {
    await staticServer.stop();
    if (!args.keep) await cleanup(backends);
  }
  notes.push(
    `the "day" is --day-seconds ${args['day-seconds']} s of real handshakes (${args['day-concurrency']} in flight), not an hour; names drawn Zipf(s=${args['zipf-s']}) over all ${N}; handshakes one at a time for the lazy/cached/static p99 (client on the same 2 cores)`,
  );
  notes.push(`load average before ${loadBefore}, after ${loadAverage()} (2 cores shared with other engineers' work)`);
  emitResult({ bench: 'fleet-million', rows, notes });
}

await main();
