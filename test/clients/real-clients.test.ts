/**
 * Real TLS clients against a keeper-served server (issue 9, "Real clients"):
 * openssl s_client, curl over HTTP/1.1 and HTTP/2, and headless Chromium
 * trusting Pebble's root through an NSS database (no certificate errors
 * ignored), before and after a forced renewal.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { CertKeeper } from '../../src/manager/keeper.js';
import { certificateKeys } from '../../src/storage/layout.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import { silentLogger } from '../helpers/logging.js';
import { startPebble, type PebbleHandle } from '../helpers/pebble.js';
import { findBinary, skipUnlessInstalled } from '../helpers/system.js';
import { opensslSClient } from '../helpers/tls-client.js';

const run = promisify(execFile);
const skip = skipUnlessInstalled('pebble', 'pebble-challtestsrv', 'openssl', 'curl');
const CERT_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

describe('real TLS clients', { skip }, () => {
  let pebble: PebbleHandle;
  let keeper: CertKeeper;
  let storage: MemoryStorage;
  let server: http2.Http2SecureServer;
  let port: number;
  let dir: string;
  let rootFile: string;
  const names = ['app.example.test', 'api.example.test'] as const;

  before(async () => {
    pebble = await startPebble();
    dir = await mkdtemp(join(tmpdir(), 'certkeeper-clients-'));
    rootFile = join(dir, 'pebble-root.pem');
    await writeFile(rootFile, await pebble.rootPem());
    storage = new MemoryStorage();
    keeper = new CertKeeper({
      ca: pebble.directoryUrl,
      caCertificates: pebble.pebbleCaPem,
      agreeToTerms: true,
      storage,
      challenges: { http01: { port: pebble.httpPort, host: '127.0.0.1' }, tlsAlpn01: false },
      logger: silentLogger(),
    });
    server = http2.createSecureServer({ ...keeper.tlsOptions({ ALPNProtocols: ['h2', 'http/1.1'] }), allowHTTP1: true }, (req, res) => {
      res.setHeader('content-type', 'text/html');
      res.end(`<html><body><p id="who">served ${req.headers.host ?? req.headers[':authority']} over ${req.httpVersion}</p></body></html>`);
    });
    await keeper.manageSync(names);
    port = await new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
  });
  after(async () => {
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    await keeper?.close();
    await pebble?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('openssl s_client verifies every name, and the chain it prints is the stored chain', async () => {
    for (const name of names) {
      const out = await opensslSClient(port, name, rootFile);
      assert.match(out, /Verify return code: 0 \(ok\)/, name);
      const served = (out.match(CERT_BLOCK) ?? []).map((pem) => new X509Certificate(pem).fingerprint256);
      const status = keeper.status(name);
      const stored = (await storage.load(certificateKeys(status.issuer!, name).cert)).toString();
      const expected = (stored.match(CERT_BLOCK) ?? []).map((pem) => new X509Certificate(pem).fingerprint256);
      assert.deepEqual(served, expected, `${name}: served chain equals stored chain`);
    }
  });

  test('curl gets the app over HTTP/1.1 and HTTP/2 with verification on', async () => {
    for (const [flag, version] of [['--http1.1', '1.1'], ['--http2', '2.0']] as const) {
      const { stdout } = await run('curl', ['--silent', '--show-error', '--fail', flag, '--cacert', rootFile, '--resolve', `${names[0]}:${port}:127.0.0.1`, `https://${names[0]}:${port}/`], { timeout: 15_000 });
      assert.match(stdout, new RegExp(`served ${names[0].replaceAll('.', '\\.')}(:${port})? over ${version.replace('.', '\\.')}`), flag);
    }
  });

  test('headless Chromium trusting the root through NSS loads the page, before and after a forced renewal', { skip: skipUnlessInstalled('chromium', 'certutil') }, async () => {
    const home = join(dir, 'home');
    const nssdb = join(home, '.pki', 'nssdb');
    await mkdir(nssdb, { recursive: true });
    await run('certutil', ['-d', `sql:${nssdb}`, '-N', '--empty-password']);
    await run('certutil', ['-d', `sql:${nssdb}`, '-A', '-t', 'C,,', '-n', 'pebble-root', '-i', rootFile]);
    const load = async (): Promise<string> => {
      const { stdout } = await run(
        findBinary('chromium')!,
        [
          '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
          '--disable-component-update', '--disable-sync', `--user-data-dir=${join(dir, 'chrome-profile')}`,
          `--host-resolver-rules=MAP ${names[0]} 127.0.0.1`, '--dump-dom', `https://${names[0]}:${port}/`,
        ],
        { env: { ...process.env, HOME: home }, timeout: 60_000 },
      );
      return stdout;
    };
    const first = await load();
    assert.match(first, /<p id="who">served app\.example\.test/, 'page loaded without certificate error');
    const before = keeper.status(names[0]).serialNumber;
    const renewed = await keeper.renew(names[0], { force: true });
    assert.notEqual(renewed.serialNumber, before);
    const second = await load();
    assert.match(second, /<p id="who">served app\.example\.test/, 'page loads with the renewed certificate');
  });
});
