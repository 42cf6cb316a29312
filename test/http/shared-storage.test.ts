/**
 * Two processes share one FileStorage: process A (a child process) orders a
 * certificate and opens no HTTP-01 listener; Pebble's validation requests go
 * to process B (this one), which mounted the challenge handler on Pebble's
 * HTTP-01 port and never ordered anything. B finds A's token in storage.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { CertKeeper } from '../../src/manager/keeper.js';
import { FileStorage } from '../../src/storage/file.js';
import { silentLogger } from '../helpers/logging.js';
import { startPebble, type PebbleHandle } from '../helpers/pebble.js';
import { skipUnlessInstalled } from '../helpers/system.js';
import { closeServer, listenOn } from './helpers.js';

const skip = skipUnlessInstalled('pebble', 'pebble-challtestsrv');
const fixture = fileURLToPath(new URL('./fixtures/order-process.ts', import.meta.url));

function run(child: ChildProcess): Promise<{ code: number | null; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, stdout, stderr })));
}

describe('challenges across processes sharing storage', { skip }, () => {
  let pebble: PebbleHandle;
  let dir: string;
  let child: ChildProcess | undefined;

  before(async () => {
    pebble = await startPebble();
    dir = await mkdtemp(join(tmpdir(), 'certkeeper-shared-'));
  });
  after(async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await new Promise((resolve) => child?.once('exit', resolve));
    }
    await pebble?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('process A orders, process B answers the validation from storage', async () => {
    const storageRoot = join(dir, 'storage');
    const caFile = join(dir, 'pebble-ca.pem');
    await writeFile(caFile, pebble.pebbleCaPem);

    // Process B: the same CA and storage; mounts the handler, orders nothing.
    const keeperB = new CertKeeper({
      ca: pebble.directoryUrl,
      caCertificates: pebble.pebbleCaPem,
      agreeToTerms: true,
      storage: new FileStorage({ root: storageRoot }),
      challenges: { tlsAlpn01: false },
      logger: silentLogger(),
    });
    const answeredByB: string[] = [];
    const handler = keeperB.httpChallengeHandler((_req: IncomingMessage, res: ServerResponse) => res.writeHead(404).end());
    const server = http.createServer((req, res) => {
      res.once('finish', () => {
        if (req.url?.startsWith('/.well-known/acme-challenge/') && res.statusCode === 200) answeredByB.push(req.headers.host ?? '');
      });
      handler(req, res);
    });
    await listenOn(server, pebble.httpPort);
    try {
      const issuedBefore = pebble.issuedCount();
      child = spawn(process.execPath, ['--import', 'tsx', fixture], {
        env: { ...process.env, CA_URL: pebble.directoryUrl, CA_PEM_FILE: caFile, STORAGE_ROOT: storageRoot, NAME: 'shared.example.test' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const result = await run(child);
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, /^obtained [0-9a-f]+$/im);
      assert.equal(pebble.issuedCount(), issuedBefore + 1);
      assert.ok(answeredByB.length > 0, 'process B answered the validation request');
      assert.ok(answeredByB.every((host) => host.split(':')[0] === 'shared.example.test'));
      assert.deepEqual(keeperB.list(), [], 'process B manages nothing');
    } finally {
      await closeServer(server);
      await keeperB.close();
    }
  });
});
