/**
 * Shared pieces of the reload tests: temp directories, write-then-rename,
 * a TLS server over keeper.tlsOptions(), waiting for typed events.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import type { CertKeeperEvents, EventName } from '../../src/events.js';
import type { CertKeeper } from '../../src/manager/keeper.js';

export async function makeTempDir(prefix = 'certkeeper-reload-'): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** Writes a sibling temp file, then renames it over `path` (how editors, kubelet and most tools replace files). */
export async function writeAtomic(path: string, content: string | Buffer, mode = 0o600): Promise<void> {
  const temp = `${path}.tmp-${randomBytes(4).toString('hex')}`;
  await writeFile(temp, content, { mode });
  await rename(temp, path);
}

export interface TestServer {
  port: number;
  server: tls.Server;
  close(): Promise<void>;
}

/** A TLS server on 127.0.0.1 answering "ok\n" to every connection that completes its handshake. */
export async function startTlsServer(options: tls.TlsOptions): Promise<TestServer> {
  const sockets = new Set<tls.TLSSocket>();
  const server = tls.createServer(options, (socket) => {
    socket.on('error', () => {});
    socket.end('ok\n');
  });
  server.on('tlsClientError', () => {});
  server.on('secureConnection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return {
    port: address.port,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/**
 * Connects, completes the handshake and reads the server's "ok": 'accepted'.
 * With TLS 1.3 a refused client certificate shows up after the client's own
 * handshake completes, as an alert or a reset: 'rejected'.
 */
export function mtlsAttempt(port: number, options: tls.ConnectionOptions): Promise<{ outcome: 'accepted' | 'rejected'; detail: string }> {
  return new Promise((resolve) => {
    let data = '';
    let settled = false;
    const done = (outcome: 'accepted' | 'rejected', detail: string): void => {
      if (settled) return;
      settled = true;
      socket.destroy();
      resolve({ outcome, detail });
    };
    const socket = tls.connect({ host: '127.0.0.1', port, ...options });
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      data += chunk;
      if (data.includes('ok\n')) done('accepted', 'ok');
    });
    socket.on('error', (error) => done('rejected', error.message));
    socket.on('end', () => done('rejected', 'closed without answer'));
    socket.on('close', () => done('rejected', 'closed'));
    socket.setTimeout(10_000, () => done('rejected', 'timeout'));
  });
}

/** Resolves with the next `event` payload matching `predicate`; rejects after `timeoutMs` (a hang guard, not a performance bound). */
export function nextEvent<E extends EventName>(
  keeper: CertKeeper,
  event: E,
  predicate: (payload: CertKeeperEvents[E]) => boolean = () => true,
  timeoutMs = 15_000,
): Promise<CertKeeperEvents[E]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`no ${event} event within ${timeoutMs} ms`));
    }, timeoutMs);
    const off = keeper.on(event, (payload) => {
      if (!predicate(payload)) return;
      clearTimeout(timer);
      off();
      resolve(payload);
    });
  });
}

/** Polls `condition` (async) until true; rejects after `timeoutMs`. */
export async function waitUntil(condition: () => Promise<boolean> | boolean, timeoutMs = 15_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
