/**
 * The TLS client every serving benchmark uses: a new connection per
 * handshake (no session resumption), TLS 1.3, loopback, a fixed number of
 * connections in flight. Records each handshake's latency and failures.
 */
import tls from 'node:tls';

export interface LoadOptions {
  port: number;
  /** Server name for the i-th handshake. */
  name: (i: number) => string;
  /** Stop after this long... */
  durationMs: number;
  /** ...or earlier, when this returns true. */
  stop?: () => boolean;
  concurrency: number;
  /** Check that the leaf's CN is the server name asked for (a wrong certificate counts as failed). */
  checkName?: boolean;
  /** Give up on a handshake after this long (counts as failed). */
  handshakeTimeoutMs?: number;
}

export interface LoadResult {
  ok: number;
  failed: number;
  wrongCertificate: number;
  elapsedMs: number;
  /** Milliseconds per successful handshake, in completion order. */
  latencies: number[];
  errors: Map<string, number>;
}

type Outcome = { ok: true; ms: number } | { ok: false; reason: string };

export function handshakeOnce(port: number, servername: string, checkName: boolean, timeoutMs: number): Promise<Outcome> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const socket = tls.connect({ host: '127.0.0.1', port, servername, rejectUnauthorized: false, minVersion: 'TLSv1.3' });
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ ok: false, reason: 'timeout' });
    }, timeoutMs);
    socket.once('secureConnect', () => {
      const ms = performance.now() - t0;
      clearTimeout(timer);
      const cn = checkName ? socket.getPeerCertificate().subject?.CN : undefined;
      socket.destroy();
      if (checkName && cn !== servername) resolve({ ok: false, reason: 'wrong certificate' });
      else resolve({ ok: true, ms });
    });
    socket.once('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ ok: false, reason: error.code ?? error.message });
    });
  });
}

export async function tlsLoad(options: LoadOptions): Promise<LoadResult> {
  const start = performance.now();
  const end = start + options.durationMs;
  const result: LoadResult = { ok: 0, failed: 0, wrongCertificate: 0, elapsedMs: 0, latencies: [], errors: new Map() };
  let counter = 0;
  const timeoutMs = options.handshakeTimeoutMs ?? 10_000;
  await Promise.all(
    Array.from({ length: options.concurrency }, async () => {
      while (performance.now() < end && !(options.stop?.() ?? false)) {
        const outcome = await handshakeOnce(options.port, options.name(counter++), options.checkName === true, timeoutMs);
        if (outcome.ok) {
          result.ok++;
          result.latencies.push(outcome.ms);
        } else {
          result.failed++;
          if (outcome.reason === 'wrong certificate') result.wrongCertificate++;
          result.errors.set(outcome.reason, (result.errors.get(outcome.reason) ?? 0) + 1);
        }
      }
    }),
  );
  result.elapsedMs = performance.now() - start;
  return result;
}
