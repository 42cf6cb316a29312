import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile, mkdtemp, rm } from 'node:fs/promises';
import https from 'node:https';
import tls from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { skipUnlessInstalled } from '../helpers/system.js';
import { completion, freePort, spawnCli, waitForOutput } from './helpers.js';

function get(url: string, ca: string, family?: 4 | 6): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.get(url, { ca, agent: false, ...(family ? { family } : {}) }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.setTimeout(10_000, () => req.destroy(new Error('timed out')));
    req.on('error', reject);
  });
}

describe('certkeeper demo (spawned through tsx, as npm run demo)', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'certkeeper-demo-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('serves https://localhost:<port> with an internal-CA certificate that the printed curl line verifies; SIGTERM exits 0', async () => {
    const port = await freePort();
    const storage = join(dir, 'storage');
    const child = spawnCli(['demo', '--port', String(port), '--storage', storage]);
    const done = completion(child);
    try {
      const match = await waitForOutput(child, /^ {2}(curl --cacert (\S+) (https:\/\/localhost:(\d+)\/))$/m);
      const [, curlLine, rootPath, url, printedPort] = match;
      assert.equal(Number(printedPort), port);
      assert.equal(rootPath, join(storage, 'internal', 'local', 'root.crt'));
      const root = await readFile(rootPath as string, 'utf8');

      const response = await get(url as string, root);
      assert.equal(response.status, 200);
      assert.match(response.body, /Hello from certkeeper/);
      // A client sending no SNI (an IP address) gets the same certificate, which names 127.0.0.1.
      assert.equal((await get(`https://127.0.0.1:${port}/`, root)).status, 200);
      // Without the root, verification fails: the certificate really is from the private CA.
      await assert.rejects(get(url as string, tls.rootCertificates.join('\n')), /certificate/);

      if (!skipUnlessInstalled('curl')) {
        const [cmd, ...args] = (curlLine as string).split(' ');
        const out = await new Promise<string>((resolve, reject) =>
          execFile(cmd as string, ['-sS', ...args], { timeout: 15_000 }, (error, stdout, stderr) => (error ? reject(new Error(stderr)) : resolve(stdout))),
        );
        assert.match(out, /Hello from certkeeper/);
      }
    } finally {
      child.kill('SIGTERM');
    }
    const result = await done;
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /certkeeper demo: stopped/);
  });

  test('a port in use is a usage error (exit 2) naming the port', async () => {
    const net = await import('node:net');
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as import('node:net').AddressInfo).port;
    try {
      const result = await completion(spawnCli(['demo', '--port', String(port), '--storage', join(dir, 'storage2')]));
      assert.equal(result.code, 2);
      assert.match(result.stderr, new RegExp(`127\\.0\\.0\\.1:${port}.*in use`));
    } finally {
      blocker.close();
    }
  });
});
