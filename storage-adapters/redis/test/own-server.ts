/**
 * A redis-server of the test's own (never the machine's 6379), on a free
 * loopback port with its data in a temporary directory, for tests that kill,
 * freeze and restart it. appendfsync always: every acknowledged write is on
 * disk, so "no write lost across a crash" is something the test can check.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePorts } from '../../../test/helpers/pebble.js';
import { ServerProcess } from '../../../test/helpers/server-process.js';
import { findBinary, skipUnlessInstalled } from '../../../test/helpers/system.js';

export function redisServerSkipReason(): string | false {
  return skipUnlessInstalled('redis-server');
}

export interface OwnRedis {
  readonly url: string;
  readonly process: ServerProcess;
  close(): Promise<void>;
}

export async function startOwnRedis(): Promise<OwnRedis> {
  const bin = findBinary('redis-server');
  if (bin === undefined) throw new Error('redis-server is not installed');
  const [port] = (await freePorts(1)) as [number];
  const dir = await mkdtemp(join(tmpdir(), 'certkeeper-redis-'));
  const url = `redis://127.0.0.1:${port}`;
  const server = new ServerProcess({
    name: 'redis-server',
    bin,
    args: ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'yes', '--appendfsync', 'always', '--daemonize', 'no', '--logfile', ''],
    ready: async () => {
      const probe = new Redis(url, { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0, connectTimeout: 1000 });
      probe.on('error', () => {});
      try {
        await probe.connect();
        return (await probe.ping()) === 'PONG';
      } finally {
        probe.disconnect();
      }
    },
  });
  try {
    await server.start();
  } catch (error) {
    await server.kill();
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
  return {
    url,
    process: server,
    async close() {
      await server.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
