/**
 * Starts pebble-challtestsrv alone (DNS and management API only, no HTTP-01 /
 * TLS-ALPN-01 servers) on free loopback ports, for the DNS-01 tests.
 */
import { spawn } from 'node:child_process';
import net from 'node:net';
import { freeDnsPort } from '../helpers/bind.js';
import { freePorts } from '../helpers/pebble.js';
import { findBinary } from '../helpers/system.js';

export interface ChalltestsrvProcess {
  /** `127.0.0.1:port` */
  dnsServer: string;
  managementUrl: string;
  post(path: string, body: unknown): Promise<void>;
  stop(): Promise<void>;
}

export async function startChalltestsrv(): Promise<ChalltestsrvProcess> {
  const bin = findBinary('pebble-challtestsrv');
  if (!bin) throw new Error('pebble-challtestsrv is not installed; run: apt-get install -y pebble');
  const dnsPort = await freeDnsPort();
  const [mgmtPort] = (await freePorts(1)) as [number];
  const child = spawn(
    bin,
    ['-http01', '', '-https01', '', '-tlsalpn01', '', '-dns01', `127.0.0.1:${dnsPort}`, '-management', `127.0.0.1:${mgmtPort}`, '-defaultIPv4', '127.0.0.1', '-defaultIPv6', ''],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const killOnExit = (): void => {
    child.kill('SIGKILL');
  };
  process.once('exit', killOnExit);

  const stop = async (): Promise<void> => {
    process.off('exit', killOnExit);
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await exited;
    }
  };

  const deadline = Date.now() + 10_000;
  while (!(await tcpOpen(mgmtPort))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`pebble-challtestsrv did not start:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  const managementUrl = `http://127.0.0.1:${mgmtPort}`;
  return {
    dnsServer: `127.0.0.1:${dnsPort}`,
    managementUrl,
    async post(path, body) {
      const res = await fetch(`${managementUrl}${path}`, { method: 'POST', body: JSON.stringify(body) });
      await res.arrayBuffer();
      if (!res.ok) throw new Error(`challtestsrv ${path} answered ${res.status}`);
    },
    stop,
  };
}

function tcpOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
