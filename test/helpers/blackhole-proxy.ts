/**
 * A TCP proxy on loopback in front of a real server (Redis, PostgreSQL) that
 * can stop forwarding without closing anything (a "black hole": a firewall
 * dropping packets, a proxy that hangs) or cut every connection and refuse
 * new ones (the server side gone).
 */
import net from 'node:net';
import type { AddressInfo } from 'node:net';

export interface BlackholeProxy {
  readonly port: number;
  /** Connections accepted so far. */
  readonly connections: number;
  /** Keeps every connection open but forwards nothing more, either way; new connections hang too. */
  blackhole(): void;
  /** Forwards again (bytes held back while black-holed are dropped, as a real black hole would). */
  resume(): void;
  /** Resets every connection and refuses new ones. */
  cut(): Promise<void>;
  close(): Promise<void>;
}

export async function startBlackholeProxy(targetPort: number, targetHost = '127.0.0.1'): Promise<BlackholeProxy> {
  const sockets = new Set<net.Socket>();
  let forwarding = true;
  let accepted = 0;
  const server = net.createServer((client) => {
    accepted++;
    const upstream = net.connect(targetPort, targetHost);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => s.destroy());
      s.on('close', () => sockets.delete(s));
    }
    client.on('data', (chunk) => {
      if (forwarding) upstream.write(chunk);
    });
    upstream.on('data', (chunk) => {
      if (forwarding) client.write(chunk);
    });
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const stop = (): Promise<void> =>
    new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      if (!server.listening) {
        resolve();
        return;
      }
      server.close(() => resolve());
    });
  return {
    port,
    get connections() {
      return accepted;
    },
    blackhole: () => {
      forwarding = false;
    },
    resume: () => {
      forwarding = true;
    },
    cut: stop,
    close: stop,
  };
}
