/**
 * The daemon beside a real HAProxy: the combined PEM (key + leaf + chain)
 * is what `bind ... ssl crt` loads; HTTP-01 is answered by the daemon's own
 * listener (Pebble's validation port); a forced renewal's deploy hook asks
 * HAProxy's master socket to reload while a TLS client keeps connecting.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { resolveDaemonConfig } from '../../src/daemon/config.js';
import { Daemon, type DeployedEvent } from '../../src/daemon/daemon.js';
import { silentLogger } from '../helpers/logging.js';
import { freePorts, startPebble, type PebbleHandle } from '../helpers/pebble.js';
import { skipUnlessInstalled } from '../helpers/system.js';
import { assertSwitchedServing, peerSerial, pollSerials, startHaproxy } from './servers.js';
import { waitUntil } from './wait.js';

const skip = skipUnlessInstalled('pebble', 'pebble-challtestsrv', 'haproxy');

describe('certkeeper run beside HAProxy (real HAProxy, real Pebble)', { skip }, () => {
  let pebble: PebbleHandle;
  let dir: string;
  let daemon: Daemon | undefined;
  let haproxy: Awaited<ReturnType<typeof startHaproxy>> | undefined;

  before(async () => {
    pebble = await startPebble();
    dir = await mkdtemp(join(tmpdir(), 'certkeeper-daemon-haproxy-'));
  });
  after(async () => {
    await daemon?.close();
    await haproxy?.stop();
    await pebble?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('HAProxy serves the combined PEM; after a forced renewal the master-socket reload brings the new serial without a failed handshake', async () => {
    const root = await pebble.rootPem();
    const [tlsPort] = (await freePorts(1)) as [number];
    const caRoot = join(dir, 'pebble-ca.pem');
    await writeFile(caRoot, pebble.pebbleCaPem);
    const prefix = join(dir, 'haproxy');
    const lineage = join(dir, 'live', 'lb.test');
    // The hook is known before HAProxy runs: the reload script and socket live in its prefix.
    const reloadCommand = [process.execPath, join(prefix, 'reload.mjs'), join(prefix, 'master.sock')];
    const config = resolveDaemonConfig(
      {
        storage: join(dir, 'storage'),
        ca: pebble.directoryUrl,
        caRoot,
        agreeToTerms: true,
        http01: { mode: 'listener', port: pebble.httpPort, host: '127.0.0.1' },
        files: { directory: join(dir, 'live') },
        certificates: [{ names: ['lb.test'], deployHooks: [{ command: reloadCommand, timeoutMs: 20_000, retryDelayMs: 200 }] }],
      },
      { path: join(dir, 'certkeeper.json'), env: {}, cwd: dir },
    );
    daemon = new Daemon({ logger: silentLogger() });
    const deployed: DeployedEvent[] = [];
    const failed: string[] = [];
    daemon.on('deployed', (event) => deployed.push(event));
    daemon.on('deploy_failed', (event) => failed.push(event.error.message));
    assert.deepEqual((await daemon.start(config)).failed, []);
    await daemon.deploymentsSettled();
    const first = deployed[0] as DeployedEvent;
    assert.equal(first.lineage, lineage);
    // HAProxy was not running yet: the hook failed (no master socket), was reported, and retried, not renewed again.
    assert.ok(failed.length >= 1, 'the failed first hook run was reported');
    assert.equal(pebble.issuedCount(), 1);

    haproxy = await startHaproxy({ prefix, tlsPort, crt: first.files.combined });
    await waitUntil(async () => (await peerSerial(tlsPort, 'lb.test', root).catch(() => '')) === first.serialNumber, 'HAProxy serving the combined PEM');

    const poll = pollSerials(tlsPort, 'lb.test', root);
    try {
      await daemon.renew('lb.test', { force: true });
      await daemon.deploymentsSettled();
      const second = deployed[deployed.length - 1] as DeployedEvent;
      assert.notEqual(second.serialNumber, first.serialNumber);
      assert.deepEqual(second.hooks.map((h) => h.ok), [true]);
      await waitUntil(() => poll.seen.includes(second.serialNumber), 'a client seeing the renewed certificate from HAProxy');
      await poll.stop();
      await assertSwitchedServing(poll, { old: first.serialNumber, renewed: second.serialNumber }, () => peerSerial(tlsPort, 'lb.test', root), waitUntil);
      assert.equal(pebble.issuedCount(), 2);
    } finally {
      await poll.stop();
    }
  });
});
