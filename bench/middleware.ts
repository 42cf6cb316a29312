/**
 * What certkeeper's HTTP-01 handler costs an application: requests per second
 * of a minimal node:http app served directly and through
 * `keeper.httpChallengeHandler(app)`, with the same load generator
 * (autocannon, in this process) against servers in a child process, so the
 * server side has a core to itself. Rounds alternate (A B B A ...) so drift
 * hits both alike; figures are medians. Loopback only; bounded duration
 * (about rounds x 2 x seconds, plus a warm-up).
 *
 * Besides requests per second it reports the servers' CPU time per request,
 * which a busy machine disturbs much less than throughput.
 *
 *   node --import tsx bench/middleware.ts [--seconds 2] [--rounds 8] [--connections 32]
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { CertKeeper } from '../src/manager/keeper.js';
import type { Logger } from '../src/logger.js';
import { MemoryStorage } from '../src/storage/memory.js';
import { emitResult, loadAverage, median, onTermination } from './lib/report.js';
import { serveCommands, startServerProcess } from './lib/server-process.js';

const TARGET_RATIO = 0.98;

const { values: args } = parseArgs({
  options: {
    server: { type: 'boolean', default: false },
    seconds: { type: 'string', default: '2' },
    rounds: { type: 'string', default: '8' },
    connections: { type: 'string', default: '32' },
  },
});

function app(_req: IncomingMessage, res: ServerResponse): void {
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 6 });
  res.end('hello\n');
}

function listen(server: http.Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

function totalCpuMicros(): number {
  const usage = process.cpuUsage();
  return usage.user + usage.system;
}

async function runServers(): Promise<void> {
  // The keeper never talks to a CA here: mounting the handler needs none.
  const keeper = new CertKeeper({ storage: new MemoryStorage(), logger: pino({ level: 'silent' }) as unknown as Logger });
  const plain = http.createServer(app);
  const mounted = http.createServer(keeper.httpChallengeHandler(app));
  const ports = { plain: await listen(plain), mounted: await listen(mounted) };
  serveCommands({ cpu: () => ({ micros: totalCpuMicros() }) }, async () => {
    for (const server of [plain, mounted]) {
      server.close();
      server.closeAllConnections();
    }
    await keeper.close();
  });
  process.send?.(ports);
}

/**
 * The handler's own cost for an ordinary request, with no network or other
 * process involved: ns per call of the wrapped no-op listener minus the bare
 * one (best of several batches, so preemption by other processes drops out).
 */
function handlerOverheadNanos(): number {
  const keeper = new CertKeeper({ storage: new MemoryStorage(), logger: pino({ level: 'silent' }) as unknown as Logger });
  let sink = 0;
  const noop = (req: IncomingMessage): void => {
    sink += req.url?.length ?? 0;
  };
  const wrapped = keeper.httpChallengeHandler(noop as unknown as (req: IncomingMessage, res: ServerResponse) => void);
  const req = { method: 'GET', url: '/some/page', headers: { host: 'example.com' } } as unknown as IncomingMessage;
  const res = {} as ServerResponse;
  const calls = 2_000_000;
  const best = (fn: (req: IncomingMessage, res: ServerResponse) => void): number => {
    let min = Number.POSITIVE_INFINITY;
    for (let batch = 0; batch < 7; batch++) {
      const start = process.hrtime.bigint();
      for (let i = 0; i < calls; i++) fn(req, res);
      min = Math.min(min, Number(process.hrtime.bigint() - start) / calls);
    }
    return min;
  };
  best(noop);
  best(wrapped);
  const overhead = best(wrapped) - best(noop);
  void keeper.close();
  if (sink < 0) console.log(sink);
  return Math.max(0, overhead);
}

interface AutocannonResult {
  requests: { average: number; total: number };
  errors: number;
  non2xx: number;
}
type Autocannon = (options: { url: string; connections: number; duration: number; pipelining?: number }) => Promise<AutocannonResult>;

async function main(): Promise<void> {
  const seconds = Number(args.seconds);
  const rounds = Number(args.rounds);
  const connections = Number(args.connections);
  const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;
  const servers = await startServerProcess(fileURLToPath(import.meta.url), ['--server'], 30_000);
  onTermination(() => servers.stop());
  const ports = servers.ready as { plain: number; mounted: number };

  /** Requests per second, and the servers' CPU time per request (less sensitive to a busy machine). */
  const measure = async (variant: 'plain' | 'mounted', duration: number): Promise<{ rps: number; cpuMicrosPerRequest: number }> => {
    const before = await servers.request<{ micros: number }>('cpu');
    const result = await autocannon({ url: `http://127.0.0.1:${ports[variant]}/some/page`, connections, duration });
    const after = await servers.request<{ micros: number }>('cpu');
    if (result.errors > 0 || result.non2xx > 0) throw new Error(`${variant}: ${result.errors} errors, ${result.non2xx} non-2xx responses`);
    return { rps: result.requests.average, cpuMicrosPerRequest: (after.micros - before.micros) / result.requests.total };
  };

  try {
    await measure('plain', 1);
    await measure('mounted', 1);
    const rps = { plain: [] as number[], mounted: [] as number[] };
    const cpu = { plain: [] as number[], mounted: [] as number[] };
    const pairedRatios: number[] = [];
    for (let round = 0; round < rounds; round++) {
      const order: Array<'plain' | 'mounted'> = round % 2 === 0 ? ['plain', 'mounted'] : ['mounted', 'plain'];
      for (const variant of order) {
        const sample = await measure(variant, seconds);
        rps[variant].push(sample.rps);
        cpu[variant].push(sample.cpuMicrosPerRequest);
      }
      pairedRatios.push((rps.mounted.at(-1) as number) / (rps.plain.at(-1) as number));
      console.log(
        `round ${round + 1}/${rounds}: plain ${rps.plain.at(-1)?.toFixed(0)} req/s ${cpu.plain.at(-1)?.toFixed(1)} µs CPU/req, ` +
          `with handler ${rps.mounted.at(-1)?.toFixed(0)} req/s ${cpu.mounted.at(-1)?.toFixed(1)} µs CPU/req`,
      );
    }
    const plain = median(rps.plain);
    const mounted = median(rps.mounted);
    const ratio = median(pairedRatios);
    const cpuPlain = median(cpu.plain);
    const cpuMounted = median(cpu.mounted);
    // Requests per CPU second, relative: what the throughput ratio would be on an otherwise idle core.
    const cpuRatio = cpuPlain / cpuMounted;
    const overheadNs = handlerOverheadNanos();
    // The handler's own cost set against what a request costs the server: the ratio a quiet machine would show.
    const derivedRatio = (cpuPlain * 1000) / (cpuPlain * 1000 + overheadNs);
    emitResult({
      bench: 'middleware',
      rows: [
        {
          metric: 'node:http app with httpChallengeHandler (req/s)',
          value: `${mounted.toFixed(0)} req/s`,
          baseline: `${plain.toFixed(0)} req/s (app alone)`,
          ratio: `${ratio.toFixed(3)} (median of paired rounds)`,
          target: `≥ ${TARGET_RATIO}`,
          met: ratio >= TARGET_RATIO,
        },
        {
          metric: 'server CPU per request, with handler (µs)',
          value: `${cpuMounted.toFixed(1)} µs`,
          baseline: `${cpuPlain.toFixed(1)} µs (app alone)`,
          ratio: `${cpuRatio.toFixed(3)} (requests per CPU second, relative)`,
          target: `≥ ${TARGET_RATIO}`,
          met: cpuRatio >= TARGET_RATIO,
        },
        {
          metric: 'handler overhead per ordinary request (in-process, ns)',
          value: `${overheadNs.toFixed(1)} ns`,
          baseline: `${(cpuPlain * 1000).toFixed(0)} ns server CPU per request`,
          ratio: `${derivedRatio.toFixed(4)} (derived)`,
          target: `≥ ${TARGET_RATIO}`,
          met: derivedRatio >= TARGET_RATIO,
        },
      ],
      notes: [`${rounds} interleaved rounds of ${seconds} s, ${connections} connections, GET /some/page (not a challenge path); medians; load ${loadAverage()}`],
    });
  } finally {
    await servers.stop();
  }
}

if (args.server) await runServers();
else await main();
