/**
 * What certkeeper's HTTP-01 handler costs an application: requests per second
 * of a minimal node:http app served directly and through
 * `keeper.httpChallengeHandler(app)`, with the same load generator
 * (autocannon, in this process) against servers in a child process, so the
 * server side has a core to itself. Rounds alternate (A B B A ...) so drift
 * hits both alike; figures are medians. Loopback only; bounded duration
 * (about rounds x 2 x seconds, plus a warm-up).
 *
 *   node --import tsx bench/middleware.ts [--seconds 3] [--rounds 6] [--connections 32]
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { CertKeeper } from '../src/manager.js';
import type { Logger } from '../src/logger.js';
import { MemoryStorage } from '../src/storage/memory.js';
import { emitResult, loadAverage, median, onTermination } from './lib/report.js';
import { serveCommands, startServerProcess } from './lib/server-process.js';

const TARGET_RATIO = 0.98;

const { values: args } = parseArgs({
  options: {
    server: { type: 'boolean', default: false },
    seconds: { type: 'string', default: '3' },
    rounds: { type: 'string', default: '6' },
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

async function runServers(): Promise<void> {
  // The keeper never talks to a CA here: mounting the handler needs none.
  const keeper = new CertKeeper({ storage: new MemoryStorage(), logger: pino({ level: 'silent' }) as unknown as Logger });
  const plain = http.createServer(app);
  const mounted = http.createServer(keeper.httpChallengeHandler(app));
  const ports = { plain: await listen(plain), mounted: await listen(mounted) };
  serveCommands({}, async () => {
    for (const server of [plain, mounted]) {
      server.close();
      server.closeAllConnections();
    }
    await keeper.close();
  });
  process.send?.(ports);
}

interface AutocannonResult {
  requests: { average: number };
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

  const measure = async (variant: 'plain' | 'mounted', duration: number): Promise<number> => {
    const result = await autocannon({ url: `http://127.0.0.1:${ports[variant]}/some/page`, connections, duration });
    if (result.errors > 0 || result.non2xx > 0) throw new Error(`${variant}: ${result.errors} errors, ${result.non2xx} non-2xx responses`);
    return result.requests.average;
  };

  try {
    await measure('plain', 1);
    await measure('mounted', 1);
    const samples = { plain: [] as number[], mounted: [] as number[] };
    for (let round = 0; round < rounds; round++) {
      const order: Array<'plain' | 'mounted'> = round % 2 === 0 ? ['plain', 'mounted'] : ['mounted', 'plain'];
      for (const variant of order) samples[variant].push(await measure(variant, seconds));
      console.log(`round ${round + 1}/${rounds}: plain ${samples.plain.at(-1)?.toFixed(0)} req/s, with handler ${samples.mounted.at(-1)?.toFixed(0)} req/s`);
    }
    const plain = median(samples.plain);
    const mounted = median(samples.mounted);
    const ratio = mounted / plain;
    emitResult({
      bench: 'middleware',
      rows: [
        {
          metric: 'node:http app with httpChallengeHandler (req/s)',
          value: `${mounted.toFixed(0)} req/s`,
          baseline: `${plain.toFixed(0)} req/s (app alone)`,
          ratio: ratio.toFixed(3),
          target: `≥ ${TARGET_RATIO}`,
          met: ratio >= TARGET_RATIO,
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
