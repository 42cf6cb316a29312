import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CertKeeper } from '../../src/manager/keeper.js';
import { FileStorage } from '../../src/storage/file.js';
import { startPebble, type PebbleHandle } from '../helpers/pebble.js';
import { silentLogger } from '../helpers/logging.js';
import { skipUnlessInstalled } from '../helpers/system.js';
import { handshake, httpsGet, opensslSClient } from '../helpers/tls-client.js';

const skip = skipUnlessInstalled('pebble', 'pebble-challtestsrv', 'openssl');

function listen(server: https.Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

describe('manageSync against Pebble', { skip }, () => {
  let pebble: PebbleHandle;
  let dir: string;
  let root: string;

  before(async () => {
    pebble = await startPebble();
    dir = await mkdtemp(join(tmpdir(), 'certkeeper-manage-'));
    root = await pebble.rootPem();
  });
  after(async () => {
    await pebble?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const names = ['one.example.test', 'two.example.test'];
  const keeperOptions = () => ({
    ca: pebble.directoryUrl,
    caCertificates: pebble.pebbleCaPem,
    agreeToTerms: true,
    email: 'admin@example.test',
    storage: new FileStorage({ root: join(dir, 'storage') }),
    challenges: { http01: { port: pebble.httpPort, host: '127.0.0.1' }, tlsAlpn01: false as const },
    logger: silentLogger(),
  });

  test('obtains two certificates and serves each by SNI to Node and openssl clients', async () => {
    const keeper = new CertKeeper(keeperOptions());
    const server = https.createServer(keeper.tlsOptions(), (_req, res) => res.end('hello'));
    try {
      const issuedBefore = pebble.issuedCount();
      await keeper.manageSync(names);
      assert.equal(pebble.issuedCount(), issuedBefore + 2);
      const port = await listen(server);
      const caFile = join(dir, 'pebble-root.pem');
      await writeFile(caFile, root);
      for (const name of names) {
        const response = await httpsGet(port, name, root);
        assert.equal(response.status, 200);
        assert.equal(response.body, 'hello');
        const status = keeper.status(name);
        assert.equal(status.state, 'valid');
        assert.equal(response.serialNumber, status.serialNumber?.toUpperCase());
        const peer = await handshake(port, name, root);
        assert.equal(peer.subjectAltName, `DNS:${name}`);
        assert.ok(peer.authorized, peer.authorizationError);
        assert.ok(status.nextRenewalAt && status.notAfter && status.nextRenewalAt < status.notAfter);

        const out = await opensslSClient(port, name, caFile);
        assert.match(out, /Verify return code: 0 \(ok\)/);
        const served = [...out.matchAll(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)].map((m) => new X509Certificate(m[0]));
        assert.ok(served.length >= 2, 'leaf and intermediate are sent');
        assert.ok(served[0]?.subjectAltName?.includes(name));
        assert.ok(served[0]?.checkIssued(served[1] as X509Certificate));
      }
    } finally {
      server.close();
      await keeper.close();
    }
  });

  test('a second keeper on the same storage serves both names with Pebble stopped', async () => {
    await pebble.stop();
    const keeper = new CertKeeper(keeperOptions());
    const server = https.createServer(keeper.tlsOptions(), (_req, res) => res.end('again'));
    try {
      await keeper.manageSync(names);
      const port = await listen(server);
      for (const name of names) {
        const response = await httpsGet(port, name, root);
        assert.equal(response.body, 'again');
      }
    } finally {
      server.close();
      await keeper.close();
    }
  });
});
