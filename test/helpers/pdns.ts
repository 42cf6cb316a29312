/**
 * Starts a real PowerDNS Authoritative server (gsqlite3 backend, HTTP API
 * enabled with a random key) on free loopback ports for one test file. Zones
 * are created through the API, each with NS `ns1.<zone>` and A records for the
 * apex and `ns1` at 127.0.0.1, so Pebble can resolve through it. Caches are off,
 * so a change is visible to the next query.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { digTxt, freeDnsPort } from './bind.js';
import { findBinary } from './system.js';
import { exitOnSignals } from './exit-on-signal.js';

const execFileAsync = promisify(execFile);
const SCHEMA = '/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql';

export interface PowerDnsOptions {
  /** Zones to create through the API, e.g. `example.test`. */
  zones?: string[];
}

export interface PowerDnsHandle {
  /** DNS `127.0.0.1:port`. */
  server: string;
  dnsPort: number;
  /** `http://127.0.0.1:port` (the provider's apiUrl). */
  apiUrl: string;
  apiKey: string;
  /** Creates a zone through the API. */
  createZone(zone: string): Promise<void>;
  /** Calls the API; throws on a non-2xx status. */
  api(method: string, path: string, body?: unknown): Promise<unknown>;
  txt(name: string): Promise<string[]>;
  output(): string;
  stop(): Promise<void>;
}

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

export async function startPowerDns(options: PowerDnsOptions = {}): Promise<PowerDnsHandle> {
  const bin = findBinary('pdns_server');
  if (!bin) throw new Error('pdns_server is not installed; run: apt-get install -y pdns-server pdns-backend-sqlite3');
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    exitOnSignals();
    process.on('exit', () => {
      for (const child of live) child.kill('SIGKILL');
    });
  }
  const dir = await mkdtemp(join(tmpdir(), 'certkeeper-pdns-'));
  const database = join(dir, 'pdns.sqlite3');
  await execFileAsync('sqlite3', [database, `.read ${SCHEMA}`]);
  const apiKey = randomBytes(16).toString('hex');

  let lastError: Error | undefined;
  for (let attempt = 0; attempt < 5; attempt++) {
    const dnsPort = await freeDnsPort();
    let webPort = await freeDnsPort();
    while (webPort === dnsPort) webPort = await freeDnsPort();
    await writeFile(
      join(dir, 'pdns.conf'),
      [
        'launch=gsqlite3',
        `gsqlite3-database=${database}`,
        'local-address=127.0.0.1',
        `local-port=${dnsPort}`,
        'api=yes',
        `api-key=${apiKey}`,
        'webserver=yes',
        'webserver-address=127.0.0.1',
        `webserver-port=${webPort}`,
        'webserver-allow-from=127.0.0.1',
        `socket-dir=${dir}`,
        'guardian=no',
        'daemon=no',
        'disable-syslog=yes',
        'security-poll-suffix=',
        'cache-ttl=0',
        'negquery-cache-ttl=0',
        'query-cache-ttl=0',
        'zone-cache-refresh-interval=0',
        'receiver-threads=1',
        'distributor-threads=1',
        'loglevel=4',
        '',
      ].join('\n'),
    );
    let output = '';
    const child = spawn(bin, [`--config-dir=${dir}`], { stdio: ['ignore', 'pipe', 'pipe'] });
    live.add(child);
    child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.once('exit', () => live.delete(child));
    let dead = false;
    void exited.then(() => (dead = true));

    const apiUrl = `http://127.0.0.1:${webPort}`;
    const api = async (method: string, path: string, body?: unknown): Promise<unknown> => {
      const response = await fetch(`${apiUrl}/api/v1${path}`, {
        method,
        headers: { 'X-API-Key': apiKey, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      const text = await response.text();
      if (!response.ok) throw new Error(`PowerDNS API ${method} ${path}: HTTP ${response.status} ${text}`);
      return text.length > 0 ? JSON.parse(text) : undefined;
    };

    const deadline = Date.now() + 15_000;
    let ready = false;
    while (!dead && Date.now() < deadline) {
      // DNS sockets are bound before the webserver starts: an answering API means both are up.
      if (/Listening for HTTP requests/.test(output)) {
        try {
          await api('GET', '/servers/localhost');
          ready = true;
          break;
        } catch {
          // webserver not up yet
        }
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    if (!ready) {
      child.kill('SIGKILL');
      await exited;
      lastError = new Error(`pdns_server did not start:\n${output}`);
      if (/address already in use/i.test(output)) continue;
      break;
    }

    const server = `127.0.0.1:${dnsPort}`;
    const createZone = async (zone: string): Promise<void> => {
      const apex = `${zone}.`;
      await api('POST', '/servers/localhost/zones', {
        name: apex,
        kind: 'Native',
        nameservers: [`ns1.${apex}`],
        rrsets: [
          { name: `ns1.${apex}`, type: 'A', ttl: 60, records: [{ content: '127.0.0.1', disabled: false }] },
          { name: apex, type: 'A', ttl: 60, records: [{ content: '127.0.0.1', disabled: false }] },
        ],
      });
    };
    for (const zone of options.zones ?? []) await createZone(zone);
    let stopped = false;
    return {
      server,
      dnsPort,
      apiUrl,
      apiKey,
      createZone,
      api,
      txt: (name) => digTxt(server, name),
      output: () => output,
      async stop() {
        if (stopped) return;
        stopped = true;
        if (child.exitCode === null && child.signalCode === null) {
          child.kill('SIGTERM');
          const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
          await exited;
          clearTimeout(timer);
        }
        await rm(dir, { recursive: true, force: true });
      },
    };
  }
  await rm(dir, { recursive: true, force: true });
  throw lastError ?? new Error('pdns_server did not start');
}
