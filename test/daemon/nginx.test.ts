/**
 * The daemon beside a real nginx and a real Pebble: HTTP-01 through nginx's
 * webroot (and, second, through nginx proxying the challenge path to the
 * daemon's endpoint), the files nginx loads, and a forced renewal whose
 * deploy hook reloads nginx while a TLS client keeps connecting.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { resolveDaemonConfig } from '../../src/daemon/config.js';
import { Daemon, type DeployedEvent } from '../../src/daemon/daemon.js';
import { silentLogger } from '../helpers/logging.js';
import { freePorts, startPebble, type PebbleHandle } from '../helpers/pebble.js';
import { skipUnlessInstalled } from '../helpers/system.js';
import { assertSwitchedServing, nginxTlsSite, peerSerial, pollSerials, startNginx, type ServerHandle } from './servers.js';
import { waitUntil } from './wait.js';

const run = promisify(execFile);
const skip = skipUnlessInstalled('pebble', 'pebble-challtestsrv', 'nginx');

describe('certkeeper run beside nginx (real nginx, real Pebble)', { skip }, () => {
  let pebble: PebbleHandle;
  let dir: string;
  let root: string;
  let caRoot: string;
  const cleanups: Array<() => Promise<void>> = [];

  before(async () => {
    pebble = await startPebble();
    root = await pebble.rootPem();
    dir = await mkdtemp(join(tmpdir(), 'certkeeper-daemon-nginx-'));
    // nginx's workers run as nobody and must reach the webroot and the files.
    await chmod(dir, 0o755);
    caRoot = join(dir, 'pebble-ca.pem');
    await writeFile(caRoot, pebble.pebbleCaPem);
  });
  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
    await pebble?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** The daemon's config as the JSON file would hold it. */
  const configFor = (name: string, extra: Record<string, unknown>) =>
    resolveDaemonConfig(
      { storage: join(dir, `storage-${name}`), ca: pebble.directoryUrl, caRoot, agreeToTerms: true, files: { directory: join(dir, `live-${name}`) }, ...extra },
      { path: join(dir, `${name}.json`), env: {}, cwd: dir },
    );

  const startDaemon = async (config: ReturnType<typeof configFor>) => {
    const daemon = new Daemon({ logger: silentLogger() });
    cleanups.push(() => daemon.close());
    const deployed: DeployedEvent[] = [];
    daemon.on('deployed', (event) => deployed.push(event));
    const report = await daemon.start(config);
    assert.deepEqual(report.failed, []);
    await daemon.deploymentsSettled();
    return { daemon, deployed, report };
  };

  const stopped = <S extends ServerHandle>(server: S): S => {
    cleanups.push(() => server.stop());
    return server;
  };

  test('webroot: nginx serves the certificate; a forced renewal reloads nginx through the deploy hook and clients see the new serial without one failed handshake', async () => {
    const [tlsPort] = (await freePorts(1)) as [number];
    const webroot = join(dir, 'www');
    await mkdir(webroot, { recursive: true });
    const nginx = stopped(await startNginx({ prefix: join(dir, 'nginx-webroot'), httpPort: pebble.httpPort, webroot }));

    const { daemon, deployed } = await startDaemon(
      configFor('webroot', {
        http01: { mode: 'webroot', webroot },
        deployHooks: [nginx.reloadCommand],
        certificates: [{ names: ['web.test', 'www.web.test'] }],
      }),
    );
    const first = deployed[0] as DeployedEvent;
    assert.equal(deployed.length, 1);
    assert.equal(first.changed, true);
    assert.deepEqual(first.hooks.map((h) => h.ok), [true]);
    // The token files and the folders made for them are gone again, as with certbot --webroot.
    assert.deepEqual(await readdir(webroot), []);
    assert.equal((await stat(first.files.privkey)).mode & 0o777, 0o600);
    assert.equal((await stat(first.files.combined)).mode & 0o777, 0o600);
    assert.equal((await stat(first.files.fullchain)).mode & 0o777, 0o644);
    const [key, fullchain] = await Promise.all([readFile(first.files.privkey, 'utf8'), readFile(first.files.fullchain, 'utf8')]);
    assert.equal(await readFile(first.files.combined, 'utf8'), key + fullchain);

    await writeFile(join(nginx.sitesDir, 'web.conf'), nginxTlsSite(tlsPort, first.lineage));
    await run(nginx.reloadCommand[0] as string, nginx.reloadCommand.slice(1));
    await waitUntil(async () => (await peerSerial(tlsPort, 'web.test', root).catch(() => '')) === first.serialNumber, 'nginx serving the first certificate');

    const poll = pollSerials(tlsPort, 'web.test', root);
    try {
      await daemon.renew('web.test', { force: true });
      await daemon.deploymentsSettled();
      const second = deployed[1] as DeployedEvent;
      assert.ok(second, 'the renewal was deployed');
      assert.notEqual(second.serialNumber, first.serialNumber);
      assert.deepEqual(second.hooks.map((h) => h.ok), [true]);
      await waitUntil(() => poll.seen.includes(second.serialNumber), 'a client seeing the renewed certificate from nginx');
      await poll.stop();
      await assertSwitchedServing(poll, { old: first.serialNumber, renewed: second.serialNumber }, () => peerSerial(tlsPort, 'web.test', root), waitUntil);
    } finally {
      await poll.stop();
      // Stopped even when an assertion failed: the next test's nginx binds the same challenge port.
      await nginx.stop();
    }
  });

  test('proxy: nginx forwards /.well-known/acme-challenge/ to the daemon endpoint, and serves what the daemon wrote', async () => {
    const [tlsPort, endpointPort] = (await freePorts(2)) as [number, number];
    const nginx = stopped(await startNginx({ prefix: join(dir, 'nginx-proxy'), httpPort: pebble.httpPort, proxyTo: `127.0.0.1:${endpointPort}` }));
    const { deployed, report } = await startDaemon(
      configFor('proxy', {
        http01: { mode: 'proxy', port: endpointPort },
        deployHooks: [nginx.reloadCommand],
        certificates: [{ names: ['proxied.test'], name: 'proxied' }],
      }),
    );
    assert.deepEqual(report.endpoint, { host: '127.0.0.1', port: endpointPort });
    const first = deployed[0] as DeployedEvent;
    assert.equal(first.lineage, join(dir, 'live-proxy', 'proxied'));
    await writeFile(join(nginx.sitesDir, 'proxied.conf'), nginxTlsSite(tlsPort, first.lineage));
    await run(nginx.reloadCommand[0] as string, nginx.reloadCommand.slice(1));
    await waitUntil(async () => (await peerSerial(tlsPort, 'proxied.test', root).catch(() => '')) === first.serialNumber, 'nginx serving the proxied certificate');
    // Only the challenge path reaches the daemon: nothing else is served there.
    const other = await fetch(`http://127.0.0.1:${endpointPort}/`);
    assert.equal(other.status, 404);
    await nginx.stop();
  });
});
