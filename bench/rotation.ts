/**
 * Rotation under load (issue 3): while a client keeps opening TLS 1.3
 * connections to `https.createServer(keeper.tlsOptions())`, the keeper renews
 * 1,000 certificates (`keeper.renew(name, { force: true })`: lock, new key,
 * internal issuer, crash-safe store, context swap). Measured: failed
 * handshakes (and wrong certificates) during the renewals, and p99 handshake
 * latency against the same load for the same time without renewals.
 * Each round runs both phases; figures are medians over the rounds.
 * The keeper runs with its defaults: renewals of served certificates are paced
 * while the machine is busy (10 a second), so "time to renew" reports that pace.
 *
 *   node --import tsx bench/rotation.ts [--names 1000] [--rounds 2] [--concurrency 8] [--renew-concurrency 10] [--timeout-seconds 600] [--profile]
 *
 * --profile: the server process runs under --cpu-prof; prints where its CPU time went.
 *
 * The store is fabricated fresh in a temporary directory (renewals write to it).
 * Targets: 0 failed handshakes; p99 with renewals ≤ 1.2 x p99 without.
 */
import https from 'node:https';
import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { BENCH_CACHE_DIR, benchName, fabricateStore } from './lib/fabricate.js';
import { summarizeProfile } from './lib/profile.js';
import { benchKeeper } from './lib/keeper.js';
import { emitResult, loadAverage, median, onTermination, percentile } from './lib/report.js';
import { cpuMeter, serveCommands, startServerProcess, type ServerProcess } from './lib/server-process.js';
import { tlsLoad, type LoadResult } from './lib/tls-load.js';

const { values: args } = parseArgs({
  options: {
    server: { type: 'string' },
    names: { type: 'string', default: '1000' },
    rounds: { type: 'string', default: '2' },
    concurrency: { type: 'string', default: '8' },
    'renew-concurrency': { type: 'string', default: '10' },
    'timeout-seconds': { type: 'string', default: '600' },
    profile: { type: 'boolean', default: false },
  },
});
const NAMES = Number(args.names);
const names = Array.from({ length: NAMES }, (_, i) => benchName(i));

async function runServer(root: string): Promise<void> {
  const keeper = benchKeeper(root, { maxConcurrentOrders: Number(args['renew-concurrency']) });
  const server = https.createServer(keeper.tlsOptions({ minVersion: 'TLSv1.3' }), (_req, res) => res.end('ok'));
  await keeper.manageSync(names);
  server.on('tlsClientError', () => {});
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const cpu = cpuMeter();
  let renewing: Promise<Record<string, unknown>> | undefined;
  serveCommands(
    {
      // Starts the renewals and answers at once; `renewed` waits for them.
      renew: () => {
        cpu.start();
        renewing = (async () => {
          const before = new Map(names.map((n) => [n, keeper.status(n).serialNumber]));
          const t0 = performance.now();
          let next = 0;
          const errors: string[] = [];
          const worker = async (): Promise<void> => {
            while (next < names.length) {
              const name = names[next++] as string;
              try {
                await keeper.renew(name, { force: true });
              } catch (error) {
                errors.push(error instanceof Error ? error.message : String(error));
              }
            }
          };
          await Promise.all(Array.from({ length: Number(args['renew-concurrency']) }, worker));
          const ms = performance.now() - t0;
          const changed = names.filter((n) => keeper.status(n).serialNumber !== before.get(n)).length;
          return { ms, changed, failed: errors.length, errors: errors.slice(0, 3), cpuMicros: cpu.stop() };
        })();
        return {};
      },
      renewed: async () => (renewing ? await renewing : {}),
    },
    async () => {
      server.close();
      await keeper.close();
    },
  );
  process.send?.({ port: (server.address() as AddressInfo).port, rssMiB: process.memoryUsage().rss / 2 ** 20 });
}

async function runClient(): Promise<void> {
  const rounds = Number(args.rounds);
  const concurrency = Number(args.concurrency);
  const timeoutMs = Number(args['timeout-seconds']) * 1000;
  const loadBefore = loadAverage();
  const root = await mkdtemp(join(tmpdir(), 'certkeeper-bench-rotation-'));
  let server: ServerProcess | undefined;
  onTermination(async () => {
    await server?.stop();
    await rm(root, { recursive: true, force: true });
  });
  const notes: string[] = [];
  const p99With: number[] = [];
  const p99Without: number[] = [];
  const p50With: number[] = [];
  const p50Without: number[] = [];
  const renewMs: number[] = [];
  let failedWith = 0;
  let failedWithout = 0;
  let wrong = 0;
  try {
    console.log(`fabricating ${NAMES} certificate sets...`);
    await fabricateStore(root, NAMES);
    const profileDir = join(BENCH_CACHE_DIR, 'profiles-rotation');
    if (args.profile) await rm(profileDir, { recursive: true, force: true });
    server = await startServerProcess(fileURLToPath(import.meta.url), ['--server', root, ...process.argv.slice(2).filter((a) => a !== '--profile')], 120_000, args.profile ? ['--cpu-prof', '--cpu-prof-dir', profileDir] : []);
    const port = (server.ready as { port: number }).port;
    const stride = 7919;
    const name = (i: number): string => benchName((i * stride) % NAMES);
    await tlsLoad({ port, name, durationMs: 500, concurrency }); // warm-up
    const describe = (label: string, r: LoadResult): void => {
      console.log(
        `  ${label.padEnd(17)} ${r.ok} handshakes in ${(r.elapsedMs / 1000).toFixed(1)} s  p50 ${percentile(r.latencies, 50).toFixed(2)} ms  ` +
          `p99 ${percentile(r.latencies, 99).toFixed(2)} ms  failed ${r.failed}${r.failed ? ` ${JSON.stringify([...r.errors])}` : ''}`,
      );
    };
    for (let round = 0; round < rounds; round++) {
      console.log(`round ${round + 1}`);
      await server.request('renew');
      let done = false;
      const renewed = server.request<{ ms: number; changed: number; failed: number; errors: string[]; cpuMicros: number }>('renewed').then((r) => {
        done = true;
        return r;
      });
      const withRenewals = await tlsLoad({ port, name, durationMs: timeoutMs, stop: () => done, concurrency, checkName: true });
      const result = done ? await renewed : undefined;
      describe('with renewals', withRenewals);
      if (!result) {
        notes.push(`round ${round + 1}: renewals not finished after ${timeoutMs / 1000} s`);
        await renewed;
        continue;
      }
      console.log(`  renewed ${result.changed}/${NAMES} in ${(result.ms / 1000).toFixed(1)} s (${(result.cpuMicros / 1000 / NAMES).toFixed(1)} ms server CPU per renewal incl. handshakes), ${result.failed} failed ${result.errors.join('; ')}`);
      if (result.changed !== NAMES || result.failed > 0) notes.push(`round ${round + 1}: ${result.changed}/${NAMES} serials changed, ${result.failed} renewals failed`);
      const withoutRenewals = await tlsLoad({ port, name, durationMs: withRenewals.elapsedMs, concurrency, checkName: true });
      describe('without renewals', withoutRenewals);
      renewMs.push(result.ms);
      p99With.push(percentile(withRenewals.latencies, 99));
      p99Without.push(percentile(withoutRenewals.latencies, 99));
      p50With.push(percentile(withRenewals.latencies, 50));
      p50Without.push(percentile(withoutRenewals.latencies, 50));
      failedWith += withRenewals.failed;
      failedWithout += withoutRenewals.failed;
      wrong += withRenewals.wrongCertificate + withoutRenewals.wrongCertificate;
    }
  } finally {
    await server?.stop();
    await rm(root, { recursive: true, force: true });
  }
  if (args.profile) {
    console.log('server process self time (whole run, profiled: slower):');
    for (const line of await summarizeProfile(join(BENCH_CACHE_DIR, 'profiles-rotation'), 25)) console.log(`  ${line}`);
  }
  const p99Ratio = median(p99With) / median(p99Without);
  notes.push(`${rounds} rounds, ${concurrency} connections in flight, ${args['renew-concurrency']} renewals at once; load average before ${loadBefore}, after ${loadAverage()} (2 shared cores: the client, the server and its renewals share them; noisy)`);
  emitResult({
    bench: 'rotation',
    rows: [
      { metric: `failed handshakes while renewing ${NAMES}`, value: String(failedWith), baseline: `without renewals ${failedWithout}`, target: '0', met: failedWith === 0 && wrong === 0 },
      {
        metric: 'handshake p99 latency',
        value: `${median(p99With).toFixed(2)} ms`,
        baseline: `without renewals ${median(p99Without).toFixed(2)} ms`,
        ratio: p99Ratio.toFixed(3),
        target: '≤ 1.2',
        met: p99Ratio <= 1.2,
      },
      { metric: 'handshake p50 latency', value: `${median(p50With).toFixed(2)} ms`, baseline: `${median(p50Without).toFixed(2)} ms`, ratio: (median(p50With) / median(p50Without)).toFixed(3) },
      { metric: `time to renew ${NAMES} under load`, value: `${(median(renewMs) / 1000).toFixed(1)} s` },
    ],
    notes,
  });
}

if (args.server !== undefined) await runServer(args.server);
else await runClient();
