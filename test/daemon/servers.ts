/**
 * Real nginx and HAProxy for the daemon tests: each started in the
 * foreground on loopback ports, with its own configuration and prefix folder
 * (nothing under /etc or /var is read or written), and stopped by stop() or,
 * as a last resort, by a process 'exit' hook.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { join } from 'node:path';
import tls from 'node:tls';
import { findBinary } from '../helpers/system.js';
import { exitOnSignals } from '../helpers/exit-on-signal.js';

const live = new Set<ChildProcess>();
exitOnSignals();
process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

export interface ServerHandle {
  /** argv that makes the server load its configuration again (what a deploy hook runs). */
  reloadCommand: string[];
  output(): string;
  stop(): Promise<void>;
}

export interface NginxOptions {
  prefix: string;
  httpPort: number;
  /** Served at http://<any name>:httpPort/ (the webroot); or, with proxyTo, only the challenge path is proxied. */
  webroot?: string;
  /** host:port the challenge path is proxied to. */
  proxyTo?: string;
}

/** nginx with an HTTP server on httpPort and `include sites/*.conf` (empty at first) for TLS servers added later. */
export async function startNginx(options: NginxOptions): Promise<ServerHandle & { sitesDir: string }> {
  const bin = findBinary('nginx') as string;
  const { prefix } = options;
  const sitesDir = join(prefix, 'sites');
  await mkdir(join(prefix, 'tmp'), { recursive: true });
  await mkdir(sitesDir, { recursive: true });
  // Workers run as nobody: they must be able to walk into the test's folders.
  await chmod(prefix, 0o755);
  const challenge = options.proxyTo
    ? `location /.well-known/acme-challenge/ { proxy_set_header Host $host; proxy_pass http://${options.proxyTo}; }`
    : `location /.well-known/acme-challenge/ { root ${options.webroot}; default_type text/plain; try_files $uri =404; }`;
  const conf = join(prefix, 'nginx.conf');
  const errorLog = join(prefix, 'error.log');
  await writeFile(
    conf,
    `daemon off;
master_process on;
worker_processes 1;
user nobody nogroup;
pid ${join(prefix, 'nginx.pid')};
error_log ${errorLog} warn;
events { worker_connections 128; }
http {
  access_log off;
  client_body_temp_path ${prefix}/tmp/body;
  proxy_temp_path ${prefix}/tmp/proxy;
  fastcgi_temp_path ${prefix}/tmp/fastcgi;
  uwsgi_temp_path ${prefix}/tmp/uwsgi;
  scgi_temp_path ${prefix}/tmp/scgi;
  server {
    listen 127.0.0.1:${options.httpPort};
    ${challenge}
    location / { return 404; }
  }
  include ${sitesDir}/*.conf;
}
`,
  );
  const base = ['-p', prefix, '-c', conf, '-e', errorLog];
  const child = spawnTracked(bin, base);
  await waitForPort(options.httpPort, child, 'nginx');
  return { ...handle(child, 'SIGQUIT'), reloadCommand: [bin, ...base, '-s', 'reload'], sitesDir };
}

/** A TLS server block for nginx serving fullchain/privkey of a lineage on tlsPort. */
export function nginxTlsSite(tlsPort: number, lineage: string): string {
  return `server {
  listen 127.0.0.1:${tlsPort} ssl;
  ssl_certificate ${lineage}/fullchain.pem;
  ssl_certificate_key ${lineage}/privkey.pem;
  location / { return 200 "nginx ok\\n"; }
}
`;
}

export interface HaproxyOptions {
  prefix: string;
  tlsPort: number;
  /** The combined PEM (key + leaf + chain). */
  crt: string;
}

/** HAProxy in master-worker mode with a master socket; reloadCommand asks the master to reload (new worker, old one drains). */
export async function startHaproxy(options: HaproxyOptions): Promise<ServerHandle & { masterSocket: string }> {
  const bin = findBinary('haproxy') as string;
  const { prefix } = options;
  await mkdir(prefix, { recursive: true });
  const conf = join(prefix, 'haproxy.cfg');
  const masterSocket = join(prefix, 'master.sock');
  await writeFile(
    conf,
    `global
  log stderr format raw local0 warning
defaults
  mode http
  timeout connect 5s
  timeout client 10s
  timeout server 10s
frontend tls
  bind 127.0.0.1:${options.tlsPort} ssl crt ${options.crt}
  http-request return status 200 content-type text/plain string "haproxy ok"
`,
  );
  const child = spawnTracked(bin, ['-W', '-S', `${masterSocket},mode,600`, '-f', conf]);
  await waitForPort(options.tlsPort, child, 'haproxy');
  const reloader = join(prefix, 'reload.mjs');
  // The master CLI: `reload` re-executes the master, which starts a new worker with the new files.
  await writeFile(
    reloader,
    `import net from 'node:net';
const socket = net.connect(process.argv[2], () => socket.end('reload\\n'));
socket.on('data', (d) => process.stdout.write(d));
socket.on('error', (e) => { console.error(e.message); process.exit(1); });
`,
  );
  return { ...handle(child, 'SIGTERM'), reloadCommand: [process.execPath, reloader, masterSocket], masterSocket };
}

function handle(child: ChildProcess, gracefulSignal: NodeJS.Signals): Omit<ServerHandle, 'reloadCommand'> {
  let text = '';
  child.stdout?.on('data', (c: Buffer) => (text += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (text += c.toString()));
  let stopping: Promise<void> | undefined;
  return {
    output: () => text,
    stop() {
      stopping ??= new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill(gracefulSignal);
        setTimeout(() => child.kill('SIGKILL'), 5_000).unref();
      }).then(() => {
        live.delete(child);
      });
      return stopping;
    },
  };
}

function spawnTracked(bin: string, args: string[]): ChildProcess {
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(child);
  child.once('exit', () => live.delete(child));
  return child;
}

async function waitForPort(port: number, child: ChildProcess, what: string): Promise<void> {
  let output = '';
  child.stderr?.on('data', (c: Buffer) => (output += c.toString()));
  for (let i = 0; i < 200; i++) {
    if (child.exitCode !== null) throw new Error(`${what} exited with ${child.exitCode}: ${output}`);
    if (await portOpen(port)) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`${what} did not listen on ${port}: ${output}`);
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** One verified TLS handshake (new connection): the serial the server presents, or the error. */
export function peerSerial(port: number, servername: string, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, servername, ca, rejectUnauthorized: true }, () => {
      const serial = String(socket.getPeerCertificate().serialNumber ?? '').toUpperCase();
      socket.end();
      resolve(serial);
    });
    socket.setTimeout(5_000, () => socket.destroy(new Error('handshake timed out')));
    socket.once('error', reject);
  });
}

/**
 * Handshakes one after the other until stop(): every serial seen, in order,
 * and every failure (the test asserts there is none while the server reloads).
 */
export function pollSerials(port: number, servername: string, ca: string): { seen: string[]; failures: Error[]; stop(): Promise<void> } {
  const seen: string[] = [];
  const failures: Error[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      try {
        const serial = await peerSerial(port, servername, ca);
        if (seen[seen.length - 1] !== serial) seen.push(serial);
      } catch (error) {
        failures.push(error as Error);
      }
    }
  })();
  return {
    seen,
    failures,
    async stop() {
      running = false;
      await loop;
    },
  };
}

/**
 * What a client must see across a graceful reload of nginx or HAProxy: no failed handshake, the old serial
 * first, nothing but the old and the new one (old workers may still answer a few handshakes while they
 * drain, so the two can alternate briefly), and, once the old workers are gone, only the new one.
 */
export async function assertSwitchedServing(
  poll: { seen: string[]; failures: Error[] },
  serials: { old: string; renewed: string },
  current: () => Promise<string>,
  waitUntil: (check: () => Promise<boolean>, what: string) => Promise<void>,
): Promise<void> {
  assert.deepEqual(poll.failures.map((e) => e.message), [], 'no handshake failed during the reload');
  assert.equal(poll.seen[0], serials.old);
  assert.deepEqual([...new Set(poll.seen)].sort(), [serials.old, serials.renewed].sort());
  await waitUntil(async () => {
    for (let i = 0; i < 5; i++) if ((await current()) !== serials.renewed) return false;
    return true;
  }, 'five handshakes in a row with the renewed certificate');
}
