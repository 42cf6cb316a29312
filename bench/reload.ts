/**
 * Hot reload under load (issue 7): a server serves an unmanaged certificate
 * from files (`keeper.loadCertificateFiles`) while a client keeps opening
 * TLS 1.3 connections; in one phase another "tool" replaces the certificate
 * and key files (write-then-rename) every 100 ms, in the other nothing
 * changes. Measured: handshake latency p50/p99 with replacements against
 * without, failed handshakes, and how many reloads happened.
 * Each round runs both phases (alternating which goes first); figures are
 * medians over the rounds.
 *
 *   node --import tsx bench/reload.ts [--seconds 5] [--rounds 2] [--concurrency 4] [--interval-ms 100] [--debounce-ms 20]
 *
 * The server runs in a child process (its own event loop and CPU); the files
 * are written by this process. --debounce-ms defaults to 20 (below the
 * replacement interval) so nearly every replacement is reloaded: the harsh
 * case. Targets: 0 failed handshakes; p99 with replacements ≤ 1.2 x p99 without.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { CertKeeper } from '../src/manager/keeper.js';
import { MemoryStorage } from '../src/storage/memory.js';
import { createTestCa, createTestLeaf, type TestLeaf } from '../test/helpers/tls-certs.js';
import { emitResult, loadAverage, median, onTermination, percentile } from './lib/report.js';
import { serveCommands, startServerProcess, type ServerProcess } from './lib/server-process.js';
import { tlsLoad, type LoadResult } from './lib/tls-load.js';

const { values: args } = parseArgs({
  options: {
    server: { type: 'string' },
    seconds: { type: 'string', default: '5' },
    rounds: { type: 'string', default: '2' },
    concurrency: { type: 'string', default: '4' },
    'interval-ms': { type: 'string', default: '100' },
    'debounce-ms': { type: 'string', default: '20' },
  },
});
const NAME = 'reload.bench.test';
const PAIRS = 16;

async function runServer(dir: string): Promise<void> {
  const keeper = new CertKeeper({ storage: new MemoryStorage(), logLevel: 'silent' });
  let reloads = 0;
  let reloadFailures = 0;
  keeper.on('cert_loaded', () => reloads++);
  keeper.on('cert_reload_failed', () => reloadFailures++);
  await keeper.loadCertificateFiles({ cert: join(dir, 'tls.crt'), key: join(dir, 'tls.key'), debounceMs: Number(args['debounce-ms']) });
  const server = tls.createServer(keeper.tlsOptions({ minVersion: 'TLSv1.3' }), (socket) => socket.end());
  server.on('tlsClientError', () => {});
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  serveCommands(
    { counters: () => ({ reloads, reloadFailures }) },
    async () => {
      server.close();
      await keeper.close();
    },
  );
  process.send?.({ port: (server.address() as AddressInfo).port });
}

async function writeAtomic(path: string, content: string): Promise<void> {
  const temp = `${path}.${randomBytes(4).toString('hex')}`;
  await writeFile(temp, content, { mode: 0o600 });
  await rename(temp, path);
}

async function writePair(dir: string, leaf: TestLeaf): Promise<void> {
  await writeAtomic(join(dir, 'tls.crt'), leaf.chainPem);
  await writeAtomic(join(dir, 'tls.key'), leaf.keyPem);
}

async function runClient(): Promise<void> {
  const seconds = Number(args.seconds);
  const rounds = Number(args.rounds);
  const concurrency = Number(args.concurrency);
  const intervalMs = Number(args['interval-ms']);
  const loadBefore = loadAverage();
  const dir = await mkdtemp(join(tmpdir(), 'certkeeper-bench-reload-'));
  let server: ServerProcess | undefined;
  onTermination(async () => {
    await server?.stop();
    await rm(dir, { recursive: true, force: true });
  });
  const p50 = { with: [] as number[], without: [] as number[] };
  const p99 = { with: [] as number[], without: [] as number[] };
  let failedWith = 0;
  let failedWithout = 0;
  let handshakesWith = 0;
  let reloadsTotal = 0;
  let reloadFailuresTotal = 0;
  let replacements = 0;
  const errors = new Map<string, number>();
  try {
    const ca = await createTestCa('reload bench CA');
    const leaves = await Promise.all(Array.from({ length: PAIRS }, () => createTestLeaf(ca, { names: [NAME] })));
    await writePair(dir, leaves[0] as TestLeaf);
    server = await startServerProcess(fileURLToPath(import.meta.url), ['--server', dir, ...process.argv.slice(2)], 60_000);
    const port = (server.ready as { port: number }).port;
    const load = (): Promise<LoadResult> => tlsLoad({ port, name: () => NAME, durationMs: seconds * 1000, concurrency, checkName: true });
    // Warm-up: first handshakes pay for lazy initialisation on both sides.
    await tlsLoad({ port, name: () => NAME, durationMs: 500, concurrency });

    const withReplacements = async (): Promise<LoadResult> => {
      const before = await server!.request<{ reloads: number; reloadFailures: number }>('counters');
      let stop = false;
      const replacer = (async () => {
        let i = 1;
        while (!stop) {
          await writePair(dir, leaves[i++ % PAIRS] as TestLeaf);
          replacements++;
          await new Promise((r) => setTimeout(r, intervalMs));
        }
      })();
      const result = await load();
      stop = true;
      await replacer;
      const after = await server!.request<{ reloads: number; reloadFailures: number }>('counters');
      reloadsTotal += after.reloads - before.reloads;
      reloadFailuresTotal += after.reloadFailures - before.reloadFailures;
      return result;
    };

    for (let round = 0; round < rounds; round++) {
      const order = round % 2 === 0 ? (['without', 'with'] as const) : (['with', 'without'] as const);
      for (const phase of order) {
        const result = phase === 'with' ? await withReplacements() : await load();
        p50[phase].push(percentile(result.latencies, 50));
        p99[phase].push(percentile(result.latencies, 99));
        if (phase === 'with') {
          failedWith += result.failed;
          handshakesWith += result.ok + result.failed;
        } else failedWithout += result.failed;
        for (const [reason, count] of result.errors) errors.set(reason, (errors.get(reason) ?? 0) + count);
        console.log(`round ${round + 1} ${phase} replacements: ${result.ok} ok, ${result.failed} failed, p50 ${percentile(result.latencies, 50).toFixed(2)} ms, p99 ${percentile(result.latencies, 99).toFixed(2)} ms`);
      }
    }
  } finally {
    await server?.stop();
    await rm(dir, { recursive: true, force: true });
  }

  const ratio50 = median(p50.with) / median(p50.without);
  const ratio99 = median(p99.with) / median(p99.without);
  emitResult({
    bench: 'reload',
    rows: [
      { metric: 'handshake p50 with file replacements', value: `${median(p50.with).toFixed(2)} ms`, baseline: `${median(p50.without).toFixed(2)} ms`, ratio: ratio50.toFixed(2) },
      { metric: 'handshake p99 with file replacements', value: `${median(p99.with).toFixed(2)} ms`, baseline: `${median(p99.without).toFixed(2)} ms`, ratio: ratio99.toFixed(2), target: '≤ 1.2', met: ratio99 <= 1.2 },
      { metric: 'failed handshakes during replacements', value: `${failedWith} of ${handshakesWith}`, target: '0', met: failedWith === 0 },
      { metric: 'failed handshakes without replacements', value: String(failedWithout), target: '0', met: failedWithout === 0 },
      { metric: 'reloads (certificates swapped in)', value: `${reloadsTotal} for ${replacements} replacements` },
    ],
    notes: [
      `${rounds} round(s) of ${seconds} s per phase, ${concurrency} connections in flight, files replaced every ${intervalMs} ms, debounce ${args['debounce-ms']} ms`,
      `cert_reload_failed events (a pair caught between its two renames is re-checked before it is reported): ${reloadFailuresTotal}`,
      ...(errors.size > 0 ? [`errors: ${[...errors].map(([r, n]) => `${r} x${n}`).join(', ')}`] : []),
      `load average before: ${loadBefore}, after: ${loadAverage()}`,
    ],
  });
}

if (args.server !== undefined) await runServer(args.server);
else await runClient();
