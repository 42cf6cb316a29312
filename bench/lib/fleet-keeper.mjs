// The keeper process of the fleet benchmarks (issue 20), in plain JavaScript so it runs the BUILT
// package (dist/, as users run it: `node`, no tsx), over Redis or PostgreSQL storage.
//
//   node bench/lib/fleet-keeper.mjs '<json options>'
//
// Modes: `keeper` (manageSync of N stored names, then serve) and `static` (one static certificate:
// the baseline server). Talks to the parent over IPC: first message = ready figures, then
// { cmd } requests answered with { cmd: '<cmd>:done', ... }.
import https from 'node:https';
import { pino } from 'pino';
import { keeperCommands } from './keeper-commands.mjs';
import { CertKeeper } from 'certkeeper';
import { RedisStorage } from '@certkeeper/storage-redis';
import { PostgresStorage } from '@certkeeper/storage-postgres';

const importedAt = performance.now();
const options = JSON.parse(process.argv[2] ?? '{}');
const control = keeperCommands('fleet-keeper');
const { handlers } = control;

const memory = () => {
  const m = process.memoryUsage();
  return { rss: m.rss, heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers };
};
handlers.gc = () => {
  globalThis.gc?.();
  return memory();
};

function listen(server) {
  server.on('tlsClientError', () => {});
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server.address().port)));
}

if (options.mode === 'static') {
  const server = https.createServer({ cert: options.certPem, key: options.keyPem, minVersion: 'TLSv1.3' }, (_req, res) => res.end('ok'));
  const port = await listen(server);
  handlers.stats = () => ({ ...memory(), unhandled: control.unhandled });
  control.onExit = async () => server.close();
  process.send({ port, readyMs: performance.now(), ...memory() });
} else {
  const storage =
    options.backend === 'redis'
      ? new RedisStorage({ url: options.url, prefix: options.prefix })
      : new PostgresStorage({ connectionString: options.url, schema: options.schema });
  // A fake clock (starting now) only so the idle-tick phase can move time by weeks; handshakes do not read it.
  const clock = options.fakeClock ? new (await import('certkeeper/testing')).FakeClock(Date.now()) : undefined;
  const counts = { obtaining: 0, obtained: 0, denied: 0, rateLimited: 0, failed: 0, loaded: 0 };
  const orderTimes = [];
  const keeper = new CertKeeper({
    storage,
    issuers: [{ type: 'internal' }],
    challenges: { http01: false },
    logger: pino({ level: 'silent' }),
    ...(options.cacheCapacity ? { cacheCapacity: options.cacheCapacity } : {}),
    ...(clock ? { clock } : {}),
    ...(options.onDemand
      ? { onDemand: { decide: () => true, rateLimit: options.onDemand.rateLimit, ...(options.onDemand.timeoutMs ? { timeoutMs: options.onDemand.timeoutMs } : {}) } }
      : {}),
    ...(options.maxConcurrentOrders ? { maxConcurrentOrders: options.maxConcurrentOrders } : {}),
  });
  keeper.on('cert_obtaining', () => {
    counts.obtaining++;
    orderTimes.push(Math.round(performance.now()));
  });
  keeper.on('cert_obtained', () => counts.obtained++);
  const failures = {};
  keeper.on('cert_failed', (e) => {
    counts.failed++;
    const key = `${e.renewal ? 'renewal' : 'first'}:${e.error?.code ?? e.error?.name}: ${String(e.error?.message).slice(0, 120)}`;
    failures[key] = (failures[key] ?? 0) + 1;
  });
  keeper.on('cert_loaded', () => counts.loaded++);
  keeper.on('on_demand_denied', (e) => {
    counts.denied++;
    if (e.rateLimited) counts.rateLimited++;
  });
  const server = https.createServer(keeper.tlsOptions({ minVersion: 'TLSv1.3' }), (_req, res) => res.end('ok'));
  const names = Array.from({ length: options.names ?? 0 }, (_, i) => `n${i}.bench.test`);
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  if (names.length > 0) await keeper.manageSync(names);
  const manageMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const port = await listen(server);
  const readyMs = performance.now();
  names.length = 0;
  handlers.stats = () => ({ ...memory(), cache: keeper.cacheStats(), scheduler: keeper.schedulerStats(), counts, failures, unhandled: control.unhandled, orders: keeper.orderStats() });
  handlers.orderTimes = () => ({ orderTimes });
  handlers.advance = async ({ ms, steps }) => {
    const before = keeper.schedulerStats().renewals;
    const c0 = process.cpuUsage();
    const w0 = performance.now();
    for (let i = 0; i < steps; i++) await clock.advance(ms / steps);
    const c = process.cpuUsage(c0);
    const after = keeper.schedulerStats().renewals;
    return { before, after, cpuUs: c.user + c.system, wallMs: performance.now() - w0, counts };
  };
  control.onExit = async () => {
    server.close();
    await keeper.close();
    await storage.close();
  };
  process.send({ port, importMs: importedAt, manageMs, readyMs, manageCpuMs: (cpu.user + cpu.system) / 1000, ...memory(), stats: keeper.cacheStats() });
}
