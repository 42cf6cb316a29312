/**
 * ARI revocation drill (issue #16 item 4): a keeper manages N certificates
 * issued for real by the test CA in front of Pebble (HTTP-01 validated), each
 * polled once for its renewal window. Then the CA moves every window into the
 * past at once (`revocationDrill()`) and the keeper's clock jumps past the
 * Retry-After (1 hour): every certificate must be renewed, with `replaces`,
 * exactly once, while a client keeps opening TLS connections to the keeper's
 * server. Reported: time until all are renewed, peak orders in flight,
 * renewalInfo requests per certificate over the drill (the drill poll plus
 * the new certificate's first), certificates renewed once / with replaces
 * (from the test CA's ledger), and handshake p99 during the drill against the
 * same load for the same time without it (measured right after, same run).
 *
 *   node --import tsx bench/ari-drill.ts [--count 1000] [--concurrency 8] [--timeout-seconds 900]
 *
 * Three processes: the CA (Pebble + the test CA), the server (keeper + HTTPS
 * server), and this one (the TLS client), so the CA's signing work and the
 * client's own do not land on the server's event loop.
 * Targets: each certificate renewed once; renewalInfo ≤ 2 per certificate; p99 ≤ 1.2 x.
 */
import https from 'node:https';
import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { CertKeeper } from '../src/manager/keeper.js';
import { FileStorage } from '../src/storage/file.js';
import { startTestCa } from '../src/testing/index.js';
import { silentLogger } from '../test/helpers/logging.js';
import { startPebble } from '../test/helpers/pebble.js';
import { JumpClock } from './lib/jump-clock.js';
import { emitResult, loadAverage, onTermination, percentile } from './lib/report.js';
import { serveCommands, startServerProcess, type ServerProcess } from './lib/server-process.js';
import { tlsLoad, type LoadResult } from './lib/tls-load.js';

const { values: args } = parseArgs({
  options: {
    role: { type: 'string', default: 'client' },
    directory: { type: 'string' },
    'ca-pem': { type: 'string' },
    'http-port': { type: 'string' },
    count: { type: 'string', default: '1000' },
    concurrency: { type: 'string', default: '8' },
    'timeout-seconds': { type: 'string', default: '900' },
  },
});
const COUNT = Number(args.count);
const names = Array.from({ length: COUNT }, (_, i) => `d${i}.drill.test`);
const HOUR = 3_600_000;

async function runCa(): Promise<void> {
  const pebble = await startPebble();
  const ca = await startTestCa({
    pebble: { directoryUrl: pebble.directoryUrl, managementUrl: pebble.managementUrl, caCertificate: pebble.pebbleCaPem },
    renewalInfoRetryAfterSeconds: 3600,
  });
  let drillAt = { renewalInfo: 0, newOrder: 0 };
  serveCommands(
    {
      counts: () => ({ renewalInfo: ca.requests('renewalInfo'), newOrder: ca.requests('newOrder'), certificates: ca.certificates().length }),
      drill: () => {
        drillAt = { renewalInfo: ca.requests('renewalInfo'), newOrder: ca.requests('newOrder') };
        ca.revocationDrill({ explanationUrl: 'http://127.0.0.1:9/drill' });
        return {};
      },
      ledger: () => {
        const byName = new Map<string, typeof certs>();
        const certs = ca.certificates();
        for (const c of certs) byName.set(c.identifiers[0]!, [...(byName.get(c.identifiers[0]!) ?? []), c]);
        let renewedOnce = 0;
        let withReplaces = 0;
        let maxAri = 0;
        let ariTotal = 0;
        for (const list of byName.values()) {
          if (list.length === 2) renewedOnce++;
          if (list[1]?.replaces === list[0]?.certId) withReplaces++;
          // The drill poll of the first and every poll of the second (the first poll before the drill excluded).
          const over = list.reduce((sum, c) => sum + c.renewalInfoRequests, 0) - 1;
          maxAri = Math.max(maxAri, over);
          ariTotal += over;
        }
        return { names: byName.size, renewedOnce, withReplaces, maxAri, ariTotal, renewalInfoSinceDrill: ca.requests('renewalInfo') - drillAt.renewalInfo, ordersSinceDrill: ca.requests('newOrder') - drillAt.newOrder };
      },
    },
    async () => {
      await ca.close();
      await pebble.stop();
    },
  );
  process.send?.({ directoryUrl: ca.directoryUrl, caPem: ca.caCertificate, httpPort: pebble.httpPort });
}

async function runServer(): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'certkeeper-bench-ari-'));
  const clock = new JumpClock();
  const keeper = new CertKeeper({
    ca: args.directory as string,
    caCertificates: Buffer.from(args['ca-pem'] as string, 'base64').toString('utf8'),
    agreeToTerms: true,
    storage: new FileStorage({ root }),
    challenges: { http01: { port: Number(args['http-port']), host: '127.0.0.1' }, tlsAlpn01: false },
    clock,
    // BENCH_ARI_LOG=<file>: the server keeper's debug log, for a drill that does not finish.
    logger: process.env.BENCH_ARI_LOG ? pino({ level: 'debug' }, pino.destination(process.env.BENCH_ARI_LOG)) : silentLogger(),
  });
  const renewed = new Map<string, number>();
  let allRenewed: () => void = () => {};
  const done = new Promise<void>((resolve) => (allRenewed = resolve));
  const failures = new Map<string, number>();
  keeper.on('cert_failed', (e) => {
    const key = `${(e.error as { code?: string }).code ?? 'error'}: ${e.error.message.slice(0, 120)}`;
    failures.set(key, (failures.get(key) ?? 0) + 1);
  });
  keeper.on('cert_renewed', (e) => {
    renewed.set(e.names[0]!, (renewed.get(e.names[0]!) ?? 0) + 1);
    if (renewed.size === names.length) allRenewed();
  });
  const server = https.createServer(keeper.tlsOptions({ minVersion: 'TLSv1.3' }), (_req, res) => res.end('ok'));
  server.on('tlsClientError', () => {});
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  let drillStart = 0;
  serveCommands(
    {
      obtain: async () => {
        const t0 = performance.now();
        for (let i = 0; i < names.length; i += 500) await keeper.manageSync(names.slice(i, i + 500));
        return { ms: performance.now() - t0 };
      },
      jump: (m) => {
        drillStart = performance.now();
        clock.jump(Number(m.ms));
        return {};
      },
      renewed: async () => {
        await done;
        return { ms: performance.now() - drillStart };
      },
      stats: () => ({
        ...keeper.orderStats(),
        renewedNames: renewed.size,
        renewedTwice: [...renewed.values()].filter((n) => n > 1).length,
        failures: Object.fromEntries(failures),
        notRenewed: names.filter((n) => !renewed.has(n)).slice(0, 3).map((n) => ({ name: n, ...keeper.status(n) })),
      }),
    },
    async () => {
      server.close();
      await keeper.close();
      await rm(root, { recursive: true, force: true });
    },
  );
  process.send?.({ port: (server.address() as AddressInfo).port });
}

async function waitFor(check: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 500));
  }
  return false;
}

async function runClient(): Promise<void> {
  const concurrency = Number(args.concurrency);
  const timeoutMs = Number(args['timeout-seconds']) * 1000;
  const loadBefore = loadAverage();
  const script = fileURLToPath(import.meta.url);
  let caProc: ServerProcess | undefined;
  let server: ServerProcess | undefined;
  onTermination(async () => {
    await server?.stop();
    await caProc?.stop();
  });
  const notes: string[] = [];
  try {
    caProc = await startServerProcess(script, ['--role', 'ca', '--count', String(COUNT)], 120_000);
    const { directoryUrl, caPem, httpPort } = caProc.ready as { directoryUrl: string; caPem: string; httpPort: number };
    server = await startServerProcess(script, ['--role', 'server', '--directory', directoryUrl, `--ca-pem=${Buffer.from(caPem).toString('base64')}`, '--http-port', String(httpPort), '--count', String(COUNT)], 120_000);
    const port = (server.ready as { port: number }).port;
    const ca = caProc;
    const counts = (): Promise<{ renewalInfo: number; newOrder: number; certificates: number }> => ca.request('counts');

    console.log(`issuing ${COUNT} certificates through the test CA (Pebble, HTTP-01)...`);
    const obtained = await server.request<{ ms: number }>('obtain');
    console.log(`  issued in ${(obtained.ms / 1000).toFixed(1)} s`);
    if (!(await waitFor(async () => (await counts()).renewalInfo >= COUNT, 120_000))) notes.push('not every certificate had its first renewalInfo poll before the drill');
    // The keeper asks again after its peer wait when the first ask met its own order's lock: let that settle.
    await new Promise((r) => setTimeout(r, 35_000));

    const name = (i: number): string => names[(i * 7919) % COUNT] as string;
    await tlsLoad({ port, name, durationMs: 1000, concurrency }); // warm-up
    await ca.request('drill');
    await server.request('jump', { ms: HOUR + 60_000 });
    let finished = false;
    const renewedReply = server.request<{ ms: number }>('renewed').then((r) => {
      finished = true;
      return r;
    });
    const progress = setInterval(() => {
      void server?.request<{ renewedNames: number; inFlight: number; failures: Record<string, number>; notRenewed: unknown[] }>('stats').then((s) =>
        console.log(`  ${s.renewedNames}/${COUNT} renewed, ${s.inFlight} orders in flight, failures ${JSON.stringify(s.failures)}${s.renewedNames > COUNT * 0.9 ? ` waiting for ${JSON.stringify(s.notRenewed)}` : ''}`),
      );
    }, 15_000);
    const during: LoadResult = await tlsLoad({ port, name, durationMs: timeoutMs, stop: () => finished, concurrency, checkName: true });
    clearInterval(progress);
    const renewedMs = finished ? (await renewedReply).ms : Number.NaN;
    if (!finished) notes.push(`not every certificate renewed after ${timeoutMs / 1000} s`);
    const stats = await server.request<{ peakInFlight: number; renewedNames: number; renewedTwice: number }>('stats');
    // The new certificates' first polls (after the 30 s peer wait, when an ask met the keeper's own order lock).
    await waitFor(async () => (await ca.request<{ renewalInfoSinceDrill: number }>('ledger')).renewalInfoSinceDrill >= 2 * COUNT, 90_000);
    const without: LoadResult = await tlsLoad({ port, name, durationMs: during.elapsedMs, concurrency, checkName: true });
    const ledger = await ca.request<{ names: number; renewedOnce: number; withReplaces: number; maxAri: number; ariTotal: number; renewalInfoSinceDrill: number; ordersSinceDrill: number }>('ledger');
    const p99During = percentile(during.latencies, 99);
    const p99Without = percentile(without.latencies, 99);
    const ratio = p99During / p99Without;
    console.log(`  during the drill: ${during.ok} handshakes, p99 ${p99During.toFixed(2)} ms, failed ${during.failed}; without: ${without.ok}, p99 ${p99Without.toFixed(2)} ms, failed ${without.failed}`);
    if (during.failed > 0) notes.push(`failed handshakes during the drill: ${JSON.stringify(Object.fromEntries(during.errors))}`);
    notes.push(
      `${COUNT} certificates issued for real through the test CA in front of Pebble in ${(obtained.ms / 1000).toFixed(0)} s; ${concurrency} TLS connections in flight; keeper defaults (maxConcurrentOrders 10, renewalPacing on, no order bucket for a private CA); ` +
        `load average before ${loadBefore}, after ${loadAverage()} (2 shared cores; noisy)`,
    );
    emitResult({
      bench: 'ari-drill',
      rows: [
        { metric: `time until all ${COUNT} renewed after the drill`, value: `${(renewedMs / 1000).toFixed(1)} s` },
        { metric: 'certificates renewed exactly once (test CA ledger)', value: `${ledger.renewedOnce}/${COUNT}`, baseline: `orders since drill ${ledger.ordersSinceDrill}, renewed twice ${stats.renewedTwice}`, target: `${COUNT}/${COUNT}`, met: ledger.renewedOnce === COUNT && ledger.ordersSinceDrill === COUNT },
        { metric: 'renewals ordered with replaces', value: `${ledger.withReplaces}/${COUNT}` },
        { metric: 'peak orders in flight', value: String(stats.peakInFlight), target: '≤ 10 (maxConcurrentOrders)', met: stats.peakInFlight <= 10 },
        { metric: 'renewalInfo requests per certificate over the drill', value: `max ${ledger.maxAri}, mean ${(ledger.ariTotal / COUNT).toFixed(2)}`, target: '≤ 2', met: ledger.maxAri <= 2 },
        { metric: 'handshake p99 during the drill', value: `${p99During.toFixed(2)} ms`, baseline: `without ${p99Without.toFixed(2)} ms`, ratio: ratio.toFixed(3), target: '≤ 1.2', met: ratio <= 1.2 },
        { metric: 'failed handshakes during the drill', value: String(during.failed + during.wrongCertificate), baseline: `without ${without.failed + without.wrongCertificate}`, target: '0', met: during.failed + during.wrongCertificate === 0 },
      ],
      notes,
    });
  } finally {
    await server?.stop();
    await caProc?.stop();
  }
}

if (args.role === 'ca') await runCa();
else if (args.role === 'server') await runServer();
else await runClient();
