/**
 * Smoke test of every HTTP example against Pebble: it starts, obtains a
 * certificate, answers one HTTPS request with it, and exits with code 0 on
 * SIGTERM, leaving no process behind.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { startPebble, type PebbleHandle } from '../helpers/pebble.js';
import { skipUnlessInstalled } from '../helpers/system.js';
import { httpsGet } from '../helpers/tls-client.js';

const skip = skipUnlessInstalled('pebble', 'pebble-challtestsrv');
const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const EXAMPLES = ['node-http', 'express', 'fastify', 'koa', 'serve-https'];
const READY_TIMEOUT_MS = 60_000;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** Resolves with the `listening https://...` URL once printed; rejects if the process exits first. */
function waitForReady(child: ChildProcess, output: { text: string }): Promise<URL> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`not ready in time:\n${output.text}`)), READY_TIMEOUT_MS);
    const onData = (chunk: Buffer): void => {
      output.text += chunk.toString();
      const match = /listening (https:\/\/\S+)/.exec(output.text);
      if (match?.[1]) {
        clearTimeout(timer);
        child.stdout?.off('data', onData);
        resolve(new URL(match[1]));
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', (chunk: Buffer) => (output.text += chunk.toString()));
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`exited with ${code} before it was ready:\n${output.text}`));
    });
  });
}

function exitOf(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('HTTP examples against Pebble', { skip }, () => {
  let pebble: PebbleHandle;
  let dir: string;
  let caFile: string;
  let root: string;
  const children = new Set<ChildProcess>();

  before(async () => {
    pebble = await startPebble();
    dir = await mkdtemp(join(tmpdir(), 'certkeeper-examples-'));
    caFile = join(dir, 'pebble-ca.pem');
    await writeFile(caFile, pebble.pebbleCaPem);
    root = await pebble.rootPem();
  });
  after(async () => {
    for (const child of children) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await exitOf(child);
      }
    }
    await pebble?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  for (const example of EXAMPLES) {
    test(`examples/${example}: starts, obtains, answers over HTTPS, exits 0 on SIGTERM`, async () => {
      const name = `${example}.example.test`;
      const child = spawn(process.execPath, ['--import', 'tsx', join('examples', example, 'index.ts')], {
        cwd: repoRoot,
        env: {
          ...process.env,
          CERTKEEPER_CA: pebble.directoryUrl,
          CERTKEEPER_CA_ROOT: caFile,
          CERTKEEPER_NAMES: name,
          CERTKEEPER_EMAIL: 'examples@example.test',
          CERTKEEPER_AGREE_TO_TERMS: '1',
          CERTKEEPER_STORAGE: join(dir, example),
          HTTP_PORT: String(pebble.httpPort),
          HTTPS_PORT: String(await freePort()),
          HOST: '127.0.0.1',
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      children.add(child);
      const output = { text: '' };
      try {
        const url = await waitForReady(child, output);
        assert.equal(url.hostname, name);
        const response = await httpsGet(Number(url.port), name, root);
        assert.equal(response.status, 200, output.text);
        assert.match(response.body, new RegExp(`hello from ${name.replace(/\./g, '\\.')}`));
        child.kill('SIGTERM');
        const { code, signal } = await exitOf(child);
        assert.deepEqual({ code, signal }, { code: 0, signal: null }, output.text);
        assert.equal(alive(child.pid ?? -1), false, 'no process left behind');
      } finally {
        if (child.exitCode === null && child.signalCode === null) {
          child.kill('SIGKILL');
          await exitOf(child);
        }
      }
    });
  }
});
