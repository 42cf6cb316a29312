/**
 * Handshakes per second and server CPU per handshake: a TLS server serving
 * 10,000 cached names through the context cache (SNICallback) against a
 * Node TLS server holding one static certificate. Same client, TLS 1.3,
 * ECDSA P-256, a new connection for every handshake, loopback only.
 *
 *   node --import tsx bench/handshakes.ts [--names 10000] [--seconds 2] [--rounds 4] [--concurrency 8]
 *
 * The servers run in a child process so its CPU time is the servers' alone;
 * the variants alternate over the rounds so drift hits both alike.
 */
import { fork, type ChildProcess } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import tls from 'node:tls';
import { benchName, createBenchCa, leafChainPem } from './lib/fabricate.js';
import { buildMaterial } from '../src/tls/certificate-material.js';
import { ContextCache } from '../src/tls/context-cache.js';
import { buildTlsOptions } from '../src/tls/tls-options.js';

const { values: args } = parseArgs({
  options: {
    server: { type: 'boolean', default: false },
    names: { type: 'string', default: '10000' },
    seconds: { type: 'string', default: '2' },
    rounds: { type: 'string', default: '4' },
    concurrency: { type: 'string', default: '8' },
  },
});

const NAME_COUNT = Number(args.names);
const STATIC_NAME = 'static.bench.test';

// ---- Server process ----

async function runServer(): Promise<void> {
  const started = performance.now();
  // One leaf key for every certificate (bench/lib/fabricate.ts): the handshake cost does not depend on it, generation time does.
  const ca = createBenchCa();
  const keyPem = ca.leafKeyPem;

  const common: tls.TlsOptions = { minVersion: 'TLSv1.3' };
  // Context options given up front: set later (by buildTlsOptions) they would rebuild every context.
  const cache = new ContextCache({ capacity: Math.max(NAME_COUNT, 1), contextOptions: { minVersion: 'TLSv1.3' } });
  for (let i = 0; i < NAME_COUNT; i++) {
    cache.add(buildMaterial(leafChainPem(ca, benchName(i), i + 1, 10), keyPem, { managed: true }));
  }
  const staticCert = leafChainPem(ca, STATIC_NAME, 0xffffff, 10);
  const onSecure = (socket: tls.TLSSocket): void => {
    socket.end();
  };
  const staticServer = tls.createServer({ ...common, cert: staticCert, key: keyPem }, onSecure);
  const cacheServer = tls.createServer(buildTlsOptions(cache, common), onSecure);
  // Reference point: Node's own SNICallback cost with a plain Map of the same contexts, no cache logic.
  const plain = new Map<string, tls.SecureContext>();
  for (let i = 0; i < NAME_COUNT; i++) plain.set(benchName(i), cache.getCached(benchName(i))!);
  const plainServer = tls.createServer({ ...common, SNICallback: (name, cb) => cb(null, plain.get(name)) }, onSecure);
  for (const s of [staticServer, cacheServer, plainServer]) s.on('tlsClientError', () => {});
  await Promise.all([staticServer, cacheServer, plainServer].map((s) => new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()))));

  // The SNICallback alone, called directly: what the cache adds to a handshake for a cached name.
  const sni = buildTlsOptions(cache, common).SNICallback as unknown as (this: object, name: string, cb: (e: Error | null, c?: tls.SecureContext) => void) => void;
  const fakeSocket = {};
  const names = Array.from({ length: 1024 }, (_, i) => benchName((i * 7919) % NAME_COUNT));
  let served = 0;
  const done = (_e: Error | null, c?: tls.SecureContext): void => {
    if (c) served++;
  };
  const calls = 1_000_000;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < calls; i++) sni.call(fakeSocket, names[i & 1023]!, done);
  const sniNsPerCall = Number(process.hrtime.bigint() - t0) / calls;
  if (served !== calls) throw new Error('SNICallback micro-benchmark: a cached name was not served');

  let cpuAtStart = process.cpuUsage();
  const send = (message: unknown): void => {
    process.send?.(message);
  };
  process.on('message', (message: { cmd: string }) => {
    if (message.cmd === 'start') {
      cpuAtStart = process.cpuUsage();
      send({ cmd: 'started' });
    } else if (message.cmd === 'stop') {
      const cpu = process.cpuUsage(cpuAtStart);
      send({ cmd: 'stopped', cpuMicros: cpu.user + cpu.system, stats: cache.stats() });
    } else if (message.cmd === 'exit') {
      staticServer.close();
      cacheServer.close();
      plainServer.close();
      cache.close();
      process.disconnect();
    }
  });
  send({
    cmd: 'ready',
    staticPort: (staticServer.address() as AddressInfo).port,
    cachePort: (cacheServer.address() as AddressInfo).port,
    plainPort: (plainServer.address() as AddressInfo).port,
    setupMs: Math.round(performance.now() - started),
    rssMiB: Math.round(process.memoryUsage().rss / 2 ** 20),
    sniNsPerCall,
  });
}

// ---- Client (parent) ----

interface Ready {
  staticPort: number;
  cachePort: number;
  plainPort: number;
  setupMs: number;
  rssMiB: number;
  sniNsPerCall: number;
}

function request<T>(child: ChildProcess, cmd: string, reply: string): Promise<T> {
  return new Promise((resolve) => {
    const onMessage = (message: { cmd: string }): void => {
      if (message.cmd !== reply) return;
      child.off('message', onMessage);
      resolve(message as T);
    };
    child.on('message', onMessage);
    child.send({ cmd });
  });
}

function handshake(port: number, servername: string): Promise<{ ok: boolean; protocol: string | null }> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', port, servername, rejectUnauthorized: false, minVersion: 'TLSv1.3' });
    socket.once('secureConnect', () => {
      const protocol = socket.getProtocol();
      socket.destroy();
      resolve({ ok: true, protocol });
    });
    socket.once('error', () => resolve({ ok: false, protocol: null }));
  });
}

async function load(port: number, names: (i: number) => string, ms: number, concurrency: number): Promise<{ ok: number; failed: number; protocols: Set<string> }> {
  const end = performance.now() + ms;
  let ok = 0;
  let failed = 0;
  let counter = 0;
  const protocols = new Set<string>();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) {
        const r = await handshake(port, names(counter++));
        if (r.ok) ok++;
        else failed++;
        if (r.protocol) protocols.add(r.protocol);
      }
    }),
  );
  return { ok, failed, protocols };
}

async function runClient(): Promise<void> {
  const seconds = Number(args.seconds);
  const rounds = Number(args.rounds);
  const concurrency = Number(args.concurrency);
  console.log(`starting the server process with ${NAME_COUNT} cached names...`);
  const child = fork(new URL(import.meta.url).pathname, ['--server', '--names', String(NAME_COUNT)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  try {
    const ready = await new Promise<Ready>((resolve, reject) => {
      child.once('message', (m) => resolve(m as Ready));
      child.once('exit', (code) => reject(new Error(`server process exited with ${code}`)));
    });
    console.log(`server ready in ${ready.setupMs} ms, RSS ${ready.rssMiB} MiB`);
    console.log(`SNICallback for a cached name, called directly: ${ready.sniNsPerCall.toFixed(0)} ns per call`);

    // Names spread over the whole cache, in an order unrelated to insertion (a multiplicative stride).
    const stride = 7919;
    const cachedName = (i: number): string => benchName((i * stride) % NAME_COUNT);
    const staticName = (): string => STATIC_NAME;
    const variants = [
      { label: 'static certificate', port: ready.staticPort, names: staticName },
      { label: `context cache (${NAME_COUNT} names)`, port: ready.cachePort, names: cachedName },
      { label: 'plain SNICallback + Map', port: ready.plainPort, names: cachedName },
    ];
    const totals = variants.map(() => ({ ok: 0, failed: 0, cpuMicros: 0, ms: 0 }));
    for (let round = 0; round < rounds; round++) {
      for (const [index, variant] of variants.entries()) {
        await load(variant.port, variant.names, 300, concurrency); // warm-up, not counted
        await request(child, 'start', 'started');
        const t0 = performance.now();
        const r = await load(variant.port, variant.names, seconds * 1000, concurrency);
        const elapsed = performance.now() - t0;
        const { cpuMicros } = await request<{ cpuMicros: number }>(child, 'stop', 'stopped');
        const total = totals[index]!;
        total.ok += r.ok;
        total.failed += r.failed;
        total.cpuMicros += cpuMicros;
        total.ms += elapsed;
        console.log(
          `round ${round + 1} ${variant.label.padEnd(30)} ${((r.ok / elapsed) * 1000).toFixed(0).padStart(5)} handshakes/s  ` +
            `${(cpuMicros / 1000 / Math.max(r.ok, 1)).toFixed(3)} ms server CPU each  failed ${r.failed}  ${[...r.protocols].join(',')}`,
        );
      }
    }
    const rate = (t: (typeof totals)[number]): number => (t.ok / t.ms) * 1000;
    const cpu = (t: (typeof totals)[number]): number => t.cpuMicros / 1000 / Math.max(t.ok, 1);
    const [s, c, p] = [totals[0]!, totals[1]!, totals[2]!];
    console.log('');
    console.log(`static certificate: ${rate(s).toFixed(0)} handshakes/s, ${cpu(s).toFixed(3)} ms server CPU per handshake, ${s.failed} failed`);
    console.log(`context cache:      ${rate(c).toFixed(0)} handshakes/s, ${cpu(c).toFixed(3)} ms server CPU per handshake, ${c.failed} failed`);
    console.log(`plain SNICallback:  ${rate(p).toFixed(0)} handshakes/s, ${cpu(p).toFixed(3)} ms server CPU per handshake, ${p.failed} failed (Node's own SNI cost, for reference)`);
    const ratio = rate(c) / rate(s);
    console.log(`ratio (cache / static) handshakes/s: ${ratio.toFixed(3)} (target >= 0.95) ${ratio >= 0.95 ? 'MET' : 'NOT MET'}`);
    console.log(`ratio (static / cache) server CPU per handshake: ${(cpu(s) / cpu(c)).toFixed(3)}`);
  } finally {
    if (child.connected) child.send({ cmd: 'exit' });
    setTimeout(() => child.kill(), 2000).unref();
  }
}

if (args.server) await runServer();
else await runClient();
