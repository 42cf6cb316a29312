/**
 * An etcd server of the test's own (Debian etcd-server), one member on free
 * loopback ports in a temporary data directory, removed by close().
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePorts } from '../../../test/helpers/pebble.js';
import { ServerProcess } from '../../../test/helpers/server-process.js';
import { findBinary, skipUnlessInstalled } from '../../../test/helpers/system.js';

/** false when etcd is installed, else the skip reason with the install line (printed; throws on CI). */
export function etcdSkipReason(): string | false {
  return skipUnlessInstalled('etcd');
}

export interface EtcdServer {
  /** http://127.0.0.1:<client port> */
  readonly endpoint: string;
  readonly process: ServerProcess;
  /** Stops etcd and removes its data directory. */
  close(): Promise<void>;
}

export async function startEtcd(): Promise<EtcdServer> {
  const bin = findBinary('etcd');
  if (bin === undefined) throw new Error('etcd is not installed');
  const [clientPort, peerPort] = (await freePorts(2)) as [number, number];
  const dataDir = await mkdtemp(join(tmpdir(), 'certkeeper-etcd-'));
  const endpoint = `http://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  const server = new ServerProcess({
    name: 'etcd',
    bin,
    args: [
      '--name', 'test',
      '--data-dir', dataDir,
      '--listen-client-urls', endpoint,
      '--advertise-client-urls', endpoint,
      '--listen-peer-urls', peer,
      '--initial-advertise-peer-urls', peer,
      '--initial-cluster', `test=${peer}`,
      // Short ticks: elections after a restart are quick, and the shortest lease etcd grants is about 1 s.
      '--heartbeat-interval', '50',
      '--election-timeout', '500',
      '--logger', 'zap',
      '--log-level', 'error',
    ],
    ready: async () => {
      const res = await fetch(`${endpoint}/health`, { signal: AbortSignal.timeout(1000) });
      return res.ok && ((await res.json()) as { health?: string }).health === 'true';
    },
  });
  try {
    await server.start();
  } catch (error) {
    await server.kill();
    await rm(dataDir, { recursive: true, force: true });
    throw error;
  }
  return {
    endpoint,
    process: server,
    async close() {
      await server.stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}
