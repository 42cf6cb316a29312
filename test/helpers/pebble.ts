/**
 * Starts a real Pebble ACME server (and, by default, pebble-challtestsrv as its
 * DNS) on free loopback ports for one test file. Pebble's own HTTPS certificate
 * is made per run by a throwaway CA; clients trust it through `pebbleCaPem`.
 *
 * Every child process is killed by stop(), and by a process 'exit' hook as a
 * last resort, so a failing test leaves no server behind.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeServerIdentity } from '../../src/testing/test-ca/pki.js';
import { findBinary } from './system.js';
import { exitOnSignals } from './exit-on-signal.js';

export interface PebbleOptions {
  /** Extra environment for the Pebble process (wins over the defaults below). */
  env?: Record<string, string>;
  /** External account binding keys, kid -> base64url HMAC key; makes EAB required. */
  eab?: Record<string, string>;
  /** Seconds. */
  certificateValidityPeriod?: number;
  domainBlocklist?: string[];
  /** host:port of the DNS server Pebble's validator uses; default: the challtestsrv started here. */
  dnsServer?: string;
  /** Default true. */
  startChalltestsrv?: boolean;
  /** PEBBLE_WFE_NONCEREJECT; default 0 so tests are deterministic. */
  nonceRejectPercent?: number;
  /** PEBBLE_AUTHZREUSE; default 0. */
  authzReusePercent?: number;
  /** PEBBLE_VA_ALWAYS_VALID=1: every challenge validates without contacting the client. */
  alwaysValid?: boolean;
}

export interface CaaPolicy {
  tag: string;
  value: string;
}

export interface ChalltestsrvHandle {
  /** 127.0.0.1:port */
  dnsServer: string;
  managementUrl: string;
  setTxt(host: string, value: string): Promise<void>;
  clearTxt(host: string): Promise<void>;
  addA(host: string, addresses: string[]): Promise<void>;
  addCaa(host: string, policies: CaaPolicy[]): Promise<void>;
  /** Raw management call, for endpoints without a helper. */
  post(path: string, body: unknown): Promise<void>;
}

export interface PebbleHandle {
  directoryUrl: string;
  /** CA of Pebble's own HTTPS certificate: trust this (caCertificates) to talk to Pebble. */
  pebbleCaPem: string;
  /** The issuing root (new on every Pebble start), from the management API's /roots/<index> (default 0; 1.. with PEBBLE_ALTERNATE_ROOTS). */
  rootPem(index?: number): Promise<string>;
  /** Ports Pebble's validator connects to for HTTP-01 and TLS-ALPN-01; the code under test binds them on 127.0.0.1. */
  httpPort: number;
  tlsPort: number;
  managementUrl: string;
  challtestsrv?: ChalltestsrvHandle;
  /** Number of "Issued certificate serial" lines Pebble has logged since start (across restarts). */
  issuedCount(): number;
  /** Everything Pebble has written to stdout/stderr. */
  output(): string;
  stop(): Promise<void>;
  /** Stops and starts Pebble again on the same ports with the same HTTPS certificate (the issuing root changes). */
  restart(): Promise<void>;
  /** Stops the Pebble process only (ports stay reserved for resume(); challtestsrv keeps running). */
  pause(): Promise<void>;
  /** Starts Pebble again after pause(), on the same ports. */
  resume(): Promise<void>;
}

export class PebbleNotInstalledError extends Error {
  constructor(binary: string) {
    super(`${binary} is not installed; run: apt-get install -y pebble (tests should call skipUnlessInstalled('pebble'))`);
  }
}

const READY_TIMEOUT_MS = 15_000;
const live = new Set<ChildProcess>();
/** Temporary folders of handles not stopped yet: removed by the exit hook too. */
const liveDirs = new Set<string>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  exitOnSignals();
  process.on('exit', () => {
    for (const child of live) child.kill('SIGKILL');
    for (const dir of liveDirs) rmSync(dir, { recursive: true, force: true });
  });
}

/** Attempts with fresh ports when a port was taken between choosing it and the server binding it. */
const START_ATTEMPTS = 3;

export async function startPebble(options: PebbleOptions = {}): Promise<PebbleHandle> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startPebbleOnce(options);
    } catch (error) {
      const portTaken = error instanceof Error && /address already in use/i.test(error.message);
      if (!portTaken || attempt >= START_ATTEMPTS) throw error;
    }
  }
}

async function startPebbleOnce(options: PebbleOptions): Promise<PebbleHandle> {
  const pebbleBin = findBinary('pebble');
  if (!pebbleBin) throw new PebbleNotInstalledError('pebble');
  const startChalltestsrv = options.startChalltestsrv !== false;
  const challBin = startChalltestsrv ? findBinary('pebble-challtestsrv') : undefined;
  if (startChalltestsrv && !challBin) throw new PebbleNotInstalledError('pebble-challtestsrv');
  installExitHook();

  const dir = await mkdtemp(join(tmpdir(), 'certkeeper-pebble-'));
  liveDirs.add(dir);
  // The same throwaway CA and localhost/127.0.0.1 leaf as the test CA's own HTTPS front.
  const { caPem, certPem, keyPem } = await makeServerIdentity(Date.now());
  await writeFile(join(dir, 'cert.pem'), certPem);
  await writeFile(join(dir, 'key.pem'), keyPem, { mode: 0o600 });

  const [listenPort, managementPort, httpPort, tlsPort, dnsPort, challMgmtPort] = (await freePorts(6)) as [number, number, number, number, number, number];
  const config = {
    pebble: {
      listenAddress: `127.0.0.1:${listenPort}`,
      managementListenAddress: `127.0.0.1:${managementPort}`,
      certificate: join(dir, 'cert.pem'),
      privateKey: join(dir, 'key.pem'),
      httpPort,
      tlsPort,
      ocspResponderURL: '',
      externalAccountBindingRequired: options.eab !== undefined,
      ...(options.eab !== undefined ? { externalAccountMACKeys: options.eab } : {}),
      ...(options.certificateValidityPeriod !== undefined ? { certificateValidityPeriod: options.certificateValidityPeriod } : {}),
      ...(options.domainBlocklist !== undefined ? { domainBlocklist: options.domainBlocklist } : {}),
    },
  };
  const configPath = join(dir, 'pebble-config.json');
  await writeFile(configPath, JSON.stringify(config, null, 2));

  const directoryUrl = `https://127.0.0.1:${listenPort}/dir`;
  const managementUrl = `https://127.0.0.1:${managementPort}`;
  let logText = '';
  let pebble: ChildProcess | undefined;
  let chall: ChildProcess | undefined;
  let challtestsrv: ChalltestsrvHandle | undefined;

  if (startChalltestsrv && challBin) {
    const dnsServer = `127.0.0.1:${dnsPort}`;
    const challMgmt = `http://127.0.0.1:${challMgmtPort}`;
    chall = spawnTracked(challBin, [
      '-http01', '', '-https01', '', '-tlsalpn01', '',
      '-dns01', dnsServer,
      '-management', `127.0.0.1:${challMgmtPort}`,
      '-defaultIPv4', '127.0.0.1', '-defaultIPv6', '',
    ], process.env, (text) => { logText += text; });
    try {
      await waitFor(() => tcpOpen(challMgmtPort), 'pebble-challtestsrv', () => logText);
    } catch (error) {
      await killAndWait(chall);
      await rm(dir, { recursive: true, force: true });
      liveDirs.delete(dir);
      throw error;
    }
    challtestsrv = makeChalltestsrvHandle(dnsServer, challMgmt);
  }

  const dnsServer = options.dnsServer ?? challtestsrv?.dnsServer;
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PEBBLE_VA_NOSLEEP: '1',
    PEBBLE_WFE_NONCEREJECT: String(options.nonceRejectPercent ?? 0),
    PEBBLE_AUTHZREUSE: String(options.authzReusePercent ?? 0),
    ...(options.alwaysValid ? { PEBBLE_VA_ALWAYS_VALID: '1' } : {}),
    ...options.env,
  };
  const args = ['-config', configPath, ...(dnsServer ? ['-dnsserver', dnsServer] : [])];

  const startPebbleProcess = async (): Promise<void> => {
    const child = spawnTracked(pebbleBin, args, env, (text) => { logText += text; });
    pebble = child;
    await waitFor(async () => {
      if (child.exitCode !== null) throw new StartFailedError(`pebble exited with code ${child.exitCode}:\n${logText}`);
      return (await httpsStatus(directoryUrl, caPem)) === 200;
    }, 'pebble', () => logText);
  };

  let stopped = false;
  let placeholder: net.Server | undefined;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    placeholder?.close();
    await Promise.all([pebble && killAndWait(pebble), chall && killAndWait(chall)]);
    await rm(dir, { recursive: true, force: true });
    liveDirs.delete(dir);
  };

  try {
    await startPebbleProcess();
  } catch (error) {
    await stop();
    throw error;
  }

  const handle: PebbleHandle = {
    directoryUrl,
    pebbleCaPem: caPem,
    managementUrl,
    httpPort,
    tlsPort,
    rootPem: (index = 0) => httpsGetText(`${managementUrl}/roots/${index}`, caPem),
    issuedCount: () => logText.match(/Issued certificate serial/g)?.length ?? 0,
    output: () => logText,
    stop,
    async restart() {
      if (stopped) throw new Error('Pebble handle already stopped');
      if (pebble) await killAndWait(pebble);
      await startPebbleProcess();
    },
    async pause() {
      if (stopped) throw new Error('Pebble handle already stopped');
      if (pebble) await killAndWait(pebble);
      // Hold the directory port while paused, so another test process cannot take it; connections are reset at once.
      placeholder = await holdPort(Number(new URL(directoryUrl).port));
    },
    async resume() {
      if (stopped) throw new Error('Pebble handle already stopped');
      await new Promise<void>((resolve) => (placeholder ? placeholder.close(() => resolve()) : resolve()));
      placeholder = undefined;
      await startPebbleProcess();
    },
  };
  if (challtestsrv) handle.challtestsrv = challtestsrv;
  return handle;
}

/** Listens on 127.0.0.1:port and resets every connection. */
function holdPort(port: number): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const server = net.createServer((socket) => socket.resetAndDestroy());
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}

function spawnTracked(bin: string, args: string[], env: NodeJS.ProcessEnv, onOutput: (text: string) => void): ChildProcess {
  const child = spawn(bin, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(child);
  child.stdout?.setEncoding('utf8').on('data', onOutput);
  child.stderr?.setEncoding('utf8').on('data', onOutput);
  child.on('exit', () => live.delete(child));
  child.on('error', (error) => onOutput(`spawn error: ${error.message}\n`));
  return child;
}

async function killAndWait(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) {
    live.delete(child);
    return;
  }
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
  await exited;
  clearTimeout(timer);
  live.delete(child);
}

class StartFailedError extends Error {}

async function waitFor(check: () => Promise<boolean>, what: string, output: () => string): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let delay = 20;
  for (;;) {
    const ready = await check().catch((error: unknown) => {
      if (error instanceof StartFailedError) throw error;
      return false; // not listening yet
    });
    if (ready) return;
    if (Date.now() > deadline) throw new Error(`${what} not ready after ${READY_TIMEOUT_MS} ms:\n${output()}`);
    await new Promise((resolve) => setTimeout(resolve, delay));
    delay = Math.min(delay * 2, 200);
  }
}

function tcpOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.once('connect', () => { socket.destroy(); resolve(true); });
    socket.once('error', () => resolve(false));
  });
}

function httpsRequest(url: string, caPem: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.get(url, { ca: caPem, agent: false, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => { body += chunk; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`timeout fetching ${url}`)));
    req.on('error', reject);
  });
}

async function httpsStatus(url: string, caPem: string): Promise<number> {
  return (await httpsRequest(url, caPem)).status;
}

async function httpsGetText(url: string, caPem: string): Promise<string> {
  const { status, body } = await httpsRequest(url, caPem);
  if (status !== 200) throw new Error(`GET ${url} answered ${status}`);
  return body;
}

function makeChalltestsrvHandle(dnsServer: string, managementUrl: string): ChalltestsrvHandle {
  const fqdn = (host: string): string => (host.endsWith('.') ? host : `${host}.`);
  const post = async (path: string, body: unknown): Promise<void> => {
    const res = await fetch(`${managementUrl}${path}`, { method: 'POST', body: JSON.stringify(body) });
    await res.arrayBuffer();
    if (!res.ok) throw new Error(`challtestsrv ${path} answered ${res.status}`);
  };
  return {
    dnsServer,
    managementUrl,
    post,
    setTxt: (host, value) => post('/set-txt', { host: fqdn(host), value }),
    clearTxt: (host) => post('/clear-txt', { host: fqdn(host) }),
    addA: (host, addresses) => post('/add-a', { host: fqdn(host), addresses }),
    addCaa: (host, policies) => post('/add-caa', { host: fqdn(host), policies }),
  };
}

/**
 * Ports handed out below this are outside Linux's ephemeral range (32768-60999), where every
 * outbound connection of every test also takes its local port: a port chosen there can be
 * taken by a client socket before the server under test binds it (CI saw Pebble fail so).
 */
const PORT_RANGE_START = 10_000;
const PORT_RANGE_END = 32_767;

/** Free loopback TCP ports, all distinct, outside the ephemeral range (each checked by binding it, then released). */
export async function freePorts(count: number): Promise<number[]> {
  const span = PORT_RANGE_END - PORT_RANGE_START + 1;
  const ports: number[] = [];
  let candidate = PORT_RANGE_START + Math.floor(Math.random() * span);
  for (let tried = 0; ports.length < count; tried++) {
    if (tried >= span) throw new Error(`no ${count} free loopback ports between ${PORT_RANGE_START} and ${PORT_RANGE_END}`);
    // A random stride, so two test files starting together rarely walk the same ports.
    candidate = PORT_RANGE_START + ((candidate - PORT_RANGE_START + 1 + Math.floor(Math.random() * 64)) % span);
    if (!ports.includes(candidate) && (await canBind(candidate))) ports.push(candidate);
  }
  return ports;
}

function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen({ port, host: '127.0.0.1', exclusive: true }, () => server.close(() => resolve(true)));
  });
}
