/**
 * Serving (issue 3): TLS 1.3 handshakes per second through
 * `https.createServer(keeper.tlsOptions())` with 10,000 managed names, all in
 * the context cache, against `https.createServer({ cert, key })` with one
 * static certificate. Same client, ECDSA P-256 certificates (leaf + CA),
 * a new connection per handshake, loopback. Server CPU per handshake is
 * measured in the server process (both servers live there; the client is the
 * parent). The variants alternate over the rounds; figures are medians.
 *
 *   node --import tsx bench/serving.ts [--names 10000] [--rounds 8] [--seconds 1.5] [--concurrency 8]
 *
 * The certificates come from a fabricated store cached under bench/.cache/
 * (built once, see bench/lib/fabricate.ts); the keeper loads them from it
 * with manageSync, as an application would at start-up.
 *
 * Target: keeper / static handshakes per second at least 0.95.
 */
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { benchName, cachedStore, createBenchCa, leafChainPem } from './lib/fabricate.js';
import { benchKeeper, manageEagerly } from './lib/keeper.js';
import { emitResult, loadAverage, median, onTermination, percentile } from './lib/report.js';
import { cpuMeter, serveCommands, startServerProcess, type ServerProcess } from './lib/server-process.js';
import { tlsLoad } from './lib/tls-load.js';

const { values: args } = parseArgs({
  options: {
    server: { type: 'string' },
    names: { type: 'string', default: '10000' },
    rounds: { type: 'string', default: '8' },
    seconds: { type: 'string', default: '1.5' },
    concurrency: { type: 'string', default: '8' },
  },
});
const NAMES = Number(args.names);
export const STORE_LABEL = 'names-100000';
export const STORE_SIZE = 100_000;
const STATIC_NAME = 'static.bench.test';

async function runServer(root: string): Promise<void> {
  const t0 = performance.now();
  const keeper = benchKeeper(root);
  const tlsCommon = { minVersion: 'TLSv1.3' as const };
  const onRequest = (_req: unknown, res: { end(body: string): void }): void => res.end('ok');
  // The server (and so tlsOptions) first, then manageSync, as an application does: options given
  // to tlsOptions() after the certificates are loaded make the cache rebuild every context.
  const keeperServer = https.createServer(keeper.tlsOptions(tlsCommon), onRequest);
  await manageEagerly(keeper, Array.from({ length: NAMES }, (_, i) => benchName(i)));
  const loadMs = performance.now() - t0;
  const ca = createBenchCa();
  const staticServer = https.createServer({ ...tlsCommon, cert: leafChainPem(ca, STATIC_NAME, 1), key: ca.leafKeyPem }, onRequest);
  for (const s of [staticServer, keeperServer]) s.on('tlsClientError', () => {});
  await Promise.all([staticServer, keeperServer].map((s) => new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()))));
  const cpu = cpuMeter();
  serveCommands(
    {
      start: () => {
        cpu.start();
        return {};
      },
      stop: () => ({ cpuMicros: cpu.stop(), stats: keeper.cacheStats() }),
    },
    async () => {
      staticServer.close();
      keeperServer.close();
      await keeper.close();
    },
  );
  process.send?.({
    staticPort: (staticServer.address() as AddressInfo).port,
    keeperPort: (keeperServer.address() as AddressInfo).port,
    loadMs,
    rssMiB: process.memoryUsage().rss / 2 ** 20,
    stats: keeper.cacheStats(),
  });
}

async function runClient(): Promise<void> {
  const rounds = Number(args.rounds);
  const seconds = Number(args.seconds);
  const concurrency = Number(args.concurrency);
  const loadBefore = loadAverage();
  const root = await cachedStore(STORE_LABEL, STORE_SIZE);
  console.log(`server process: loading ${NAMES} names from the store through manageSync...`);
  let server: ServerProcess | undefined;
  onTermination(() => server?.stop());
  server = await startServerProcess(fileURLToPath(import.meta.url), ['--server', root, '--names', String(NAMES)], 600_000);
  const ready = server.ready as { staticPort: number; keeperPort: number; loadMs: number; rssMiB: number; stats: { size?: number } };
  console.log(`ready: ${NAMES} names loaded in ${(ready.loadMs / 1000).toFixed(1)} s, server RSS ${ready.rssMiB.toFixed(0)} MiB, cache ${JSON.stringify(ready.stats)}`);
  const stride = 7919; // names spread over the whole cache, in an order unrelated to insertion
  const variants = [
    // Both variants check the leaf's name: the client must do the same work for each, on cores it shares with the server.
    { label: 'static', port: ready.staticPort, name: () => STATIC_NAME, checkName: true },
    { label: 'keeper', port: ready.keeperPort, name: (i: number) => benchName((i * stride) % NAMES), checkName: true },
  ];
  const perRound = new Map<string, { rate: number[]; cpu: number[]; p50: number[]; p99: number[]; failed: number }>(
    variants.map((v) => [v.label, { rate: [], cpu: [], p50: [], p99: [], failed: 0 }]),
  );
  try {
    for (let round = 0; round < rounds; round++) {
      for (const variant of round % 2 === 0 ? variants : [...variants].reverse()) {
        await tlsLoad({ port: variant.port, name: variant.name, durationMs: 300, concurrency, checkName: variant.checkName }); // warm-up
        await server.request('start');
        const r = await tlsLoad({ port: variant.port, name: variant.name, durationMs: seconds * 1000, concurrency, checkName: variant.checkName });
        const { cpuMicros } = await server.request<{ cpuMicros: number }>('stop');
        const acc = perRound.get(variant.label)!;
        const rate = (r.ok / r.elapsedMs) * 1000;
        const cpuMs = cpuMicros / 1000 / Math.max(r.ok, 1);
        acc.rate.push(rate);
        acc.cpu.push(cpuMs);
        acc.p50.push(percentile(r.latencies, 50));
        acc.p99.push(percentile(r.latencies, 99));
        acc.failed += r.failed;
        console.log(
          `round ${round + 1} ${variant.label.padEnd(7)} ${rate.toFixed(0).padStart(5)} handshakes/s  ${cpuMs.toFixed(3)} ms server CPU each  ` +
            `p50 ${percentile(r.latencies, 50).toFixed(2)} ms  p99 ${percentile(r.latencies, 99).toFixed(2)} ms  failed ${r.failed}${r.failed ? ` ${JSON.stringify([...r.errors])}` : ''}`,
        );
      }
    }
    const final = await server.request<{ stats: unknown }>('stop');
    console.log(`cache after the run: ${JSON.stringify(final.stats)}`);
  } finally {
    await server.stop();
  }
  const s = perRound.get('static')!;
  const k = perRound.get('keeper')!;
  const rateRatio = median(k.rate) / median(s.rate);
  emitResult({
    bench: 'serving',
    rows: [
      {
        metric: `handshakes/s, ${NAMES} cached names`,
        value: `${median(k.rate).toFixed(0)}/s`,
        baseline: `static cert ${median(s.rate).toFixed(0)}/s`,
        ratio: rateRatio.toFixed(3),
        target: '≥ 0.95',
        met: rateRatio >= 0.95,
      },
      {
        metric: 'server CPU per handshake',
        value: `${median(k.cpu).toFixed(3)} ms`,
        baseline: `${median(s.cpu).toFixed(3)} ms`,
        ratio: (median(k.cpu) / median(s.cpu)).toFixed(3),
      },
      {
        metric: 'handshake latency p50 / p99',
        value: `${median(k.p50).toFixed(2)} / ${median(k.p99).toFixed(2)} ms`,
        baseline: `${median(s.p50).toFixed(2)} / ${median(s.p99).toFixed(2)} ms`,
        ratio: `${(median(k.p50) / median(s.p50)).toFixed(3)} / ${(median(k.p99) / median(s.p99)).toFixed(3)}`,
      },
      { metric: 'failed handshakes', value: String(k.failed), baseline: String(s.failed) },
    ],
    notes: [
      `${rounds} alternating rounds of ${seconds} s, ${concurrency} connections in flight, TLS 1.3, P-256; server set-up ${(ready.loadMs / 1000).toFixed(1)} s, RSS ${ready.rssMiB.toFixed(0)} MiB`,
      `load average before ${loadBefore}, after ${loadAverage()} (2 shared cores: the client shares the CPU with the server; noisy)`,
    ],
  });
}

if (args.server !== undefined) await runServer(args.server);
else await runClient();
