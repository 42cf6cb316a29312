// The keeper process of the on-demand burst benchmark (issue 20), in plain JavaScript so it runs the BUILT
// package (dist/: `node`, no tsx), as an application starts it.
//
//   node bench/lib/burst-keeper.mjs '<json options>'
//
// Modes: `keeper` (on-demand with decide() allowing every name, internal issuer behind a recorder, Redis
// storage) and `refuse` (a plain Node TLS server whose SNICallback refuses every name at once: the floor of
// a refused handshake). Talks to the parent over IPC: first message = ready figures, then { cmd } requests
// answered with { cmd: '<cmd>:done', ... }.
import { monitorEventLoopDelay } from 'node:perf_hooks';
import tls from 'node:tls';
import { pino } from 'pino';
import { keeperCommands } from './keeper-commands.mjs';
// The keeper hands its own worker to an internal issuer it builds; this one is wrapped, so it gets one like it (CpuOffload).
import { CertKeeper, CpuOffload, InternalIssuer } from 'certkeeper';
import { RedisStorage } from '@certkeeper/storage-redis';

const options = JSON.parse(process.argv[2] ?? '{}');
const control = keeperCommands('burst-keeper');
const { handlers } = control;

// Event-loop delay: what a handshake waits before its ClientHello is even looked at.
const loopDelay = monitorEventLoopDelay({ resolution: 10 });
loopDelay.enable();
const cpuMs = () => {
  const c = process.cpuUsage();
  return (c.user + c.system) / 1000;
};
const common = () => ({
  rss: process.memoryUsage().rss,
  cpuMs: cpuMs(),
  unhandled: control.unhandled,
  loopDelayMs: { p50: loopDelay.percentile(50) / 1e6, p99: loopDelay.percentile(99) / 1e6, max: loopDelay.max / 1e6 },
});
handlers.resetLoopDelay = () => {
  loopDelay.reset();
  refusedMs.length = 0;
  return {};
};
handlers.refusedMs = () => ({ refusedMs });

// Server side of a refusal: from the accepted connection to the TLS error that ends it (no certificate).
const refusedMs = [];
const acceptedAt = new WeakMap();
function listen(server) {
  server.on('connection', (socket) => acceptedAt.set(socket, performance.now()));
  server.on('tlsClientError', (error, socket) => {
    // A client hanging up after a served handshake is not a refusal.
    if (error?.code === 'ECONNRESET' || error?.code === 'EPIPE') return;
    const t0 = acceptedAt.get(socket._parent ?? socket);
    if (t0 !== undefined && refusedMs.length < 100_000) refusedMs.push(performance.now() - t0);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server.address().port)));
}

if (options.mode === 'refuse') {
  const server = tls.createServer({ minVersion: 'TLSv1.3', SNICallback: (_name, cb) => cb(new Error('refused')) });
  const port = await listen(server);
  handlers.stats = () => common();
  control.onExit = async () => server.close();
  process.send({ port, readyMs: performance.now(), ...common() });
} else {
  const storage = new RedisStorage({ url: options.url, prefix: options.prefix });
  // The CA side: when the issuer actually received each order (after every gate of the pipeline).
  const offload = new CpuOffload({ logger: pino({ level: 'silent' }) });
  const inner = new InternalIssuer({ storage, offload });
  const issuerTimes = [];
  const issuer = {
    key: inner.key,
    issue: (request) => {
      issuerTimes.push(Math.round(performance.now()));
      return inner.issue(request);
    },
    close: () => inner.close?.(),
  };
  const counts = { obtaining: 0, obtained: 0, denied: 0, rateLimited: 0, failed: 0 };
  const orderTimes = [];
  const keeper = new CertKeeper({
    storage,
    issuers: [issuer],
    challenges: { http01: false },
    logger: pino({ level: 'silent' }),
    onDemand: { decide: () => true, rateLimit: options.rateLimit, ...(options.timeoutMs ? { timeoutMs: options.timeoutMs } : {}) },
    ...(options.maxConcurrentOrders ? { maxConcurrentOrders: options.maxConcurrentOrders } : {}),
  });
  keeper.on('cert_obtaining', () => {
    counts.obtaining++;
    orderTimes.push(Math.round(performance.now()));
  });
  keeper.on('cert_obtained', () => counts.obtained++);
  keeper.on('cert_failed', () => counts.failed++);
  keeper.on('on_demand_denied', (e) => {
    counts.denied++;
    if (e.rateLimited) counts.rateLimited++;
  });
  const server = tls.createServer(keeper.tlsOptions({ minVersion: 'TLSv1.3' }));
  const port = await listen(server);
  handlers.stats = () => ({ ...common(), counts, cache: keeper.cacheStats(), orders: keeper.orderStats() });
  handlers.times = () => ({ orderTimes, issuerTimes });
  control.onExit = async () => {
    server.close();
    await keeper.close();
    await offload.close();
    await storage.close();
  };
  process.send({ port, readyMs: performance.now(), ...common() });
}
