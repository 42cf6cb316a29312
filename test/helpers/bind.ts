/**
 * Starts a real BIND9 (`named -g`) authoritative server on a free loopback
 * port (UDP and TCP) for one test file, with primary zones that accept TXT
 * updates signed by the given TSIG keys.
 *
 * Every zone gets an SOA, an NS `ns1.<zone>` and A records for the apex and
 * `ns1` at 127.0.0.1, so Pebble (with `-dnsserver` = this server) can resolve
 * names like `example.test` through it. named runs as root without `-u` (it
 * writes the zone journal), with its own pid-file, session key and managed-keys
 * directory, and `controls { };` so it opens no rndc port.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { findBinary } from './system.js';
import { exitOnSignals } from './exit-on-signal.js';

const execFileAsync = promisify(execFile);

export interface BindTsigKey {
  name: string;
  algorithm: 'hmac-sha256' | 'hmac-sha512' | 'hmac-sha1';
  /** base64 */
  secret: string;
}

export interface BindZone {
  /** e.g. `example.test` */
  name: string;
  /** Extra zone-file lines, e.g. `_acme-challenge.app IN CNAME app.acme.test.` */
  records?: string[];
  /** Default true: keys may update TXT records anywhere in the zone. False: no updates at all (REFUSED). */
  allowUpdate?: boolean;
  /** Names of the keys granted TXT updates here (default every key). */
  updateKeys?: string[];
}

export interface BindOptions {
  zones: BindZone[];
  /** Keys allowed to update TXT records in every zone with allowUpdate. */
  tsig?: BindTsigKey | BindTsigKey[];
  /**
   * Answer recursive queries from 127.0.0.1 (default false). Needed when Pebble resolves through this
   * server and a CNAME points into another of its zones: authoritative-only BIND does not follow it.
   */
  recursion?: boolean;
  /** Paths of key files (as `tsig-keygen` writes them) that named includes; their keys are granted too, by name. */
  keyFiles?: { path: string; keyName: string }[];
}

export interface BindHandle {
  address: '127.0.0.1';
  port: number;
  /** `127.0.0.1:port`, the form Pebble's `-dnsserver` and the providers take. */
  server: string;
  dir: string;
  zoneFile(zone: string): string;
  /** TXT values at `name` as seen by `dig` (each value's strings joined), sorted. */
  txt(name: string): Promise<string[]>;
  /** Everything named wrote to stdout/stderr. */
  output(): string;
  stop(): Promise<void>;
}

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  exitOnSignals();
  process.on('exit', () => {
    for (const child of live) child.kill('SIGKILL');
  });
}

export async function startBind(options: BindOptions): Promise<BindHandle> {
  const named = findBinary('named');
  if (!named) throw new Error('named is not installed; run: apt-get install -y bind9 bind9-dnsutils');
  installExitHook();
  const dir = await mkdtemp(join(tmpdir(), 'certkeeper-bind-'));
  const keys = options.tsig === undefined ? [] : Array.isArray(options.tsig) ? options.tsig : [options.tsig];
  const keyNames = [...keys.map((k) => k.name), ...(options.keyFiles ?? []).map((k) => k.keyName)];

  const zoneFiles = new Map<string, string>();
  for (const zone of options.zones) {
    const file = join(dir, `${zone.name}.zone`);
    zoneFiles.set(zone.name, file);
    await writeFile(file, zoneText(zone));
  }

  let lastError: unknown;
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freeDnsPort();
    const conf = join(dir, 'named.conf');
    await writeFile(conf, namedConf(options.recursion === true, dir, port, keys, options.keyFiles ?? [], options.zones, keyNames, zoneFiles));
    let output = '';
    const child = spawn(named, ['-g', '-c', conf, '-n', '1'], { stdio: ['ignore', 'pipe', 'pipe'] });
    live.add(child);
    child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.once('exit', () => live.delete(child));

    const ready = await waitForReady(() => output, exited);
    if (!ready) {
      lastError = new Error(`named did not start:\n${output}`);
      child.kill('SIGKILL');
      await exited;
      if (/address in use/i.test(output)) continue;
      break;
    }
    const server = `127.0.0.1:${port}`;
    let stopped = false;
    return {
      address: '127.0.0.1',
      port,
      server,
      dir,
      zoneFile: (zone) => zoneFiles.get(zone) ?? join(dir, `${zone}.zone`),
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
  throw lastError instanceof Error ? lastError : new Error('named did not start');
}

/** TXT values at `name` from `server` (host:port), each record's strings joined, sorted. */
export async function digTxt(server: string, name: string): Promise<string[]> {
  const [host, port] = splitServer(server);
  const { stdout } = await execFileAsync('dig', [`@${host}`, '-p', String(port), '+short', '+norecurse', '+tries=1', '+time=2', 'TXT', name]);
  return stdout
    .split('\n')
    .filter((line) => line.trim().length > 0 && !line.startsWith(';'))
    .map((line) => [...line.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((m) => m[1] ?? '').join(''))
    .sort();
}

/** Runs `tsig-keygen -a <algorithm> <name>` and returns the file text it prints. */
export async function tsigKeygen(name: string, algorithm: BindTsigKey['algorithm'] = 'hmac-sha256'): Promise<string> {
  const bin = findBinary('tsig-keygen') ?? 'tsig-keygen';
  const { stdout } = await execFileAsync(bin, ['-a', algorithm, name]);
  return stdout;
}

function splitServer(server: string): [string, number] {
  const index = server.lastIndexOf(':');
  return [server.slice(0, index), Number(server.slice(index + 1))];
}

function zoneText(zone: BindZone): string {
  const apex = `${zone.name}.`;
  return [
    '$TTL 60',
    `@ IN SOA ns1.${apex} hostmaster.${apex} 1 3600 600 86400 60`,
    `@ IN NS ns1.${apex}`,
    `ns1 IN A 127.0.0.1`,
    `@ IN A 127.0.0.1`,
    ...(zone.records ?? []),
    '',
  ].join('\n');
}

function namedConf(
  recursion: boolean,
  dir: string,
  port: number,
  keys: BindTsigKey[],
  keyFiles: { path: string }[],
  zones: BindZone[],
  keyNames: string[],
  zoneFiles: Map<string, string>,
): string {
  const lines = [
    'options {',
    `  directory "${dir}";`,
    `  pid-file "${join(dir, 'named.pid')}";`,
    `  session-keyfile "${join(dir, 'session.key')}";`,
    `  managed-keys-directory "${dir}";`,
    `  listen-on port ${port} { 127.0.0.1; };`,
    '  listen-on-v6 { none; };',
    // Recursion lets BIND follow a CNAME into another of its zones, as the resolver of a CA does.
    recursion ? '  recursion yes; allow-recursion { 127.0.0.1; };' : '  recursion no;',
    // Names outside its zones go nowhere: only loopback traffic, never the root servers.
    ...(recursion ? ['  forwarders { 127.0.0.1 port 9; };', '  forward only;', '  query-source address 127.0.0.1;'] : []),
    '  dnssec-validation no;',
    '  notify no;',
    '  allow-query { any; };',
    '};',
    'controls { };',
    'logging { category default { default_stderr; }; category lame-servers { null; }; };',
    ...keys.map((k) => `key "${k.name}" { algorithm ${k.algorithm}; secret "${k.secret}"; };`),
    ...keyFiles.map((k) => `include "${k.path}";`),
  ];
  for (const zone of zones) {
    const granted = zone.updateKeys ?? keyNames;
    const allow = zone.allowUpdate !== false && granted.length > 0;
    const policy = allow ? `  update-policy { ${granted.map((n) => `grant "${n}" zonesub TXT;`).join(' ')} };` : '';
    lines.push(`zone "${zone.name}" {`, '  type primary;', `  file "${zoneFiles.get(zone.name)}";`, policy, '};');
  }
  return lines.filter((l) => l.length > 0).join('\n') + '\n';
}

async function waitForReady(output: () => string, exited: Promise<void>): Promise<boolean> {
  let done = false;
  void exited.then(() => (done = true));
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline && !done) {
    // named prints "running" once every listener is up and the zones are loaded.
    if (/\brunning\b/.test(output())) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

/** A loopback port free for both TCP and UDP (DNS needs both). */
export async function freeDnsPort(): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = await new Promise<number>((resolve, reject) => {
      const server = net.createServer();
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        const address = server.address();
        server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
      });
    });
    const udpFree = await new Promise<boolean>((resolve) => {
      const socket = dgram.createSocket('udp4');
      socket.once('error', () => resolve(false));
      socket.bind(port, '127.0.0.1', () => socket.close(() => resolve(true)));
    });
    if (udpFree && port !== 5353) return port;
  }
  throw new Error('no free loopback port for DNS');
}
