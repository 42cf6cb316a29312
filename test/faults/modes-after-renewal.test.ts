/**
 * File modes after a real renewal through the keeper (issue 14, fault
 * tests): with a permissive umask (0000), every file the keeper leaves under a
 * FileStorage root is 0600 and every folder 0700, after the first obtain and
 * after renewals (new key, new chain, sidecar rewrites, the internal CA's
 * files, locks).
 */
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { CertKeeperEvents } from '../../src/events.js';
import { CertKeeper } from '../../src/manager/keeper.js';
import { FileStorage } from '../../src/storage/file.js';
import { FakeClock } from '../../src/testing/fake-clock.js';
import { silentLogger } from '../helpers/logging.js';

async function modes(dir: string): Promise<Array<[string, number, boolean]>> {
  const out: Array<[string, number, boolean]> = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    out.push([path, (await stat(path)).mode & 0o777, entry.isDirectory()]);
    if (entry.isDirectory()) out.push(...(await modes(path)));
  }
  return out;
}

function assertModes(root: string, found: Array<[string, number, boolean]>): void {
  const wrong = found.filter(([, mode, isDir]) => mode !== (isDir ? 0o700 : 0o600)).map(([p, m]) => `${p.slice(root.length)} ${m.toString(8)}`);
  assert.deepEqual(wrong, []);
}

describe('fault: file modes after renewals', () => {
  let dir: string;
  let umask: number;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'certkeeper-modes-'));
    umask = process.umask(0o000);
  });
  after(async () => {
    process.umask(umask);
    await rm(dir, { recursive: true, force: true });
  });

  test('0600 files and 0700 folders after obtain and two renewals, whatever the umask', { timeout: 60_000 }, async () => {
    const root = join(dir, 'storage');
    const clock = new FakeClock(Date.now());
    const storage = new FileStorage({ root, logger: silentLogger() });
    // No pacer: its load checks run on unref'd timers, and nothing else here would keep the event loop alive.
    const keeper = new CertKeeper({ storage, clock, renewalPacing: false, issuers: [{ type: 'internal' }], logger: silentLogger(), challenges: { http01: false, tlsAlpn01: { listener: false } } });
    // The keeper's timers are unref'd (a library must not hold an app open); this test has no server
    // of its own, so something must keep the event loop alive while a renewal awaits one of them.
    const keepAlive = setInterval(() => {}, 1_000);
    try {
      const name = 'modes.example.test';
      await keeper.manageSync([name]);
      assertModes(root, await modes(root));
      assert.equal((await stat(root)).mode & 0o777, 0o700);
      for (let i = 0; i < 2; i++) {
        const before = keeper.status(name);
        const renewed = new Promise<CertKeeperEvents['cert_renewed']>((resolve) => {
          const off = keeper.on('cert_renewed', (e) => {
            off();
            resolve(e);
          });
        });
        await clock.set(before.nextRenewalAt!.getTime() + 1_000);
        const event = await renewed;
        assert.notEqual(event.serialNumber, before.serialNumber);
        const found = await modes(root);
        assert.ok(found.some(([p]) => p.endsWith(`${name}.key`)), 'the key file is there');
        assertModes(root, found);
      }
    } finally {
      clearInterval(keepAlive);
      await keeper.close();
      await storage.close();
    }
  });
});
