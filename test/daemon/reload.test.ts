/**
 * Daemon.reload in-process (internal CA, no ACME server): a configuration
 * that passes the file's checks but not the keeper's (an unreadable caRoot)
 * is refused before anything stops; a hook that failed is run again by the
 * next configuration, without a new certificate.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { InvalidOptionError } from '../../src/errors.js';
import { resolveDaemonConfig } from '../../src/daemon/config.js';
import { Daemon, type DeployedEvent, type DeployFailedEvent } from '../../src/daemon/daemon.js';
import { silentLogger } from '../helpers/logging.js';

describe('Daemon.reload', () => {
  let dir: string;
  let daemon: Daemon | undefined;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'certkeeper-daemon-reload-'));
  });
  after(async () => {
    await daemon?.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('an invalid configuration leaves the running keeper and files alone; a failed hook runs again after a valid reload', async () => {
    const flag = join(dir, 'hook-may-succeed');
    // Fails until the flag file exists.
    const hook = { command: [process.execPath, '-e', `process.exit(require('fs').existsSync(${JSON.stringify(flag)}) ? 0 : 1)`], retries: 0 };
    const input = { storage: 'storage', issuer: 'internal', files: { directory: 'live' }, deployHooks: [hook], certificates: [{ names: ['r.test'] }] };
    const sources = { path: join(dir, 'certkeeper.json'), env: {}, cwd: dir };
    daemon = new Daemon({ logger: silentLogger() });
    const deployed: DeployedEvent[] = [];
    const failed: DeployFailedEvent[] = [];
    daemon.on('deployed', (event) => deployed.push(event));
    daemon.on('deploy_failed', (event) => failed.push(event));
    await daemon.start(resolveDaemonConfig(input, sources));
    await daemon.deploymentsSettled();
    assert.equal(failed.length, 1);
    assert.equal((failed[0]?.error as { code?: string }).code, 'ERR_DEPLOY');
    assert.equal(failed[0]?.retryInMs, undefined);
    const keeper = daemon.keeper;
    const cert = await readFile(deployed[0]?.files.cert as string, 'utf8');

    const unstartable = resolveDaemonConfig({ ...input, issuer: 'acme', caRoot: 'missing.pem' }, sources);
    await assert.rejects(daemon.reload(unstartable), (error: unknown) => error instanceof InvalidOptionError && /missing\.pem/.test(error.message));
    assert.equal(daemon.keeper, keeper, 'the running keeper was not replaced');
    assert.deepEqual(daemon.keeper?.list().map((s) => s.state), ['valid']);

    await writeFile(flag, '');
    await daemon.reload(resolveDaemonConfig(input, sources));
    await daemon.deploymentsSettled();
    const last = deployed[deployed.length - 1] as DeployedEvent;
    assert.equal(last.changed, false, 'the files were current');
    assert.deepEqual(last.hooks.map((h) => h.ok), [true], 'the failed hook ran again');
    assert.equal(last.serialNumber, deployed[0]?.serialNumber, 'no new certificate');
    assert.equal(await readFile(last.files.cert, 'utf8'), cert);
  });
});
