/**
 * DNS-01 from the daemon's config file through an existing provider
 * (challtestsrv here, as Pebble's DNS): a wildcard beside a webroot name in
 * one daemon, so the webroot issuer carries the DNS-01 solver too.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { resolveDaemonConfig } from '../../src/daemon/config.js';
import { Daemon, type DeployedEvent } from '../../src/daemon/daemon.js';
import { silentLogger } from '../helpers/logging.js';
import { startPebble, type PebbleHandle } from '../helpers/pebble.js';
import { skipUnlessInstalled } from '../helpers/system.js';

const skip = skipUnlessInstalled('pebble', 'pebble-challtestsrv');

describe('certkeeper run with DNS-01 (real Pebble and challtestsrv)', { skip }, () => {
  let pebble: PebbleHandle;
  let dir: string;
  let daemon: Daemon | undefined;
  let web: http.Server | undefined;

  before(async () => {
    pebble = await startPebble();
    dir = await mkdtemp(join(tmpdir(), 'certkeeper-daemon-dns-'));
  });
  after(async () => {
    await daemon?.close();
    await new Promise((resolve) => (web ? web.close(resolve) : resolve(undefined)));
    await pebble?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('a wildcard through the dns provider and a plain name through the webroot, both deployed', async () => {
    const webroot = join(dir, 'www');
    await mkdir(webroot);
    // A static file server for the webroot, standing in for the web server already on the port.
    web = http.createServer((req, res) => {
      readFile(join(webroot, decodeURIComponent((req.url ?? '/').split('?')[0] as string))).then(
        (body) => res.writeHead(200).end(body),
        () => res.writeHead(404).end(),
      );
    });
    await new Promise<void>((resolve) => web?.listen(pebble.httpPort, '127.0.0.1', resolve));
    const caRoot = join(dir, 'pebble-ca.pem');
    await writeFile(caRoot, pebble.pebbleCaPem);
    const config = resolveDaemonConfig(
      {
        storage: 'storage',
        ca: pebble.directoryUrl,
        caRoot,
        agreeToTerms: true,
        dns: { provider: 'challtestsrv', managementUrl: pebble.challtestsrv?.managementUrl, propagation: { resolvers: [pebble.challtestsrv?.dnsServer], intervalMs: 50, timeoutMs: 10_000 } },
        http01: { mode: 'webroot', webroot },
        files: { directory: 'live' },
        certificates: [{ names: ['*.wild.test'] }, { names: ['plain.test'] }],
      },
      { path: join(dir, 'certkeeper.json'), env: {}, cwd: dir },
    );
    daemon = new Daemon({ logger: silentLogger() });
    const deployed: DeployedEvent[] = [];
    daemon.on('deployed', (event) => deployed.push(event));
    assert.deepEqual((await daemon.start(config)).failed, []);
    await daemon.deploymentsSettled();
    const byName = new Map(deployed.map((d) => [d.names[0], d]));
    assert.equal(byName.get('*.wild.test')?.lineage, join(dir, 'live', 'wildcard_.wild.test'));
    const wildcard = new X509Certificate(await readFile(byName.get('*.wild.test')?.files.cert as string));
    assert.match(wildcard.subjectAltName ?? '', /DNS:\*\.wild\.test/);
    const plain = new X509Certificate(await readFile(byName.get('plain.test')?.files.cert as string));
    assert.match(plain.subjectAltName ?? '', /DNS:plain\.test/);
    assert.equal(pebble.issuedCount(), 2);
  });
});
