/**
 * Fault 6: storage that cannot be written, runs out of space, or holds a
 * damaged certificate set.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmod, mkdir, mkdtemp, rm, truncate, writeFile } from 'node:fs/promises';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ManageError, StorageError } from '../../src/errors.js';
import { CertKeeper } from '../../src/manager/keeper.js';
import { loadCertificateSet } from '../../src/storage/certificates.js';
import { FileStorage } from '../../src/storage/file.js';
import { certificateKeys } from '../../src/storage/layout.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import type { Storage } from '../../src/storage/types.js';
import { FakeClock } from '../../src/testing/fake-clock.js';
import { startPebble, type PebbleHandle } from '../helpers/pebble.js';
import { skipUnlessInstalled } from '../helpers/system.js';
import { handshake } from '../helpers/tls-client.js';
import { closeServer, countingStorage, listen, nextEvent, pebbleOptions } from './helpers.js';

const skip = skipUnlessInstalled('pebble', 'pebble-challtestsrv');

/** Every value under `prefix`, by key. */
async function snapshot(storage: Storage, prefix: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const key of await storage.list(prefix, true)) {
    if ((await storage.stat(key)).isTerminal) out.set(key, (await storage.load(key)).toString('base64'));
  }
  return out;
}

/** Makes `dir` unwritable even for root (chattr +i); returns an undo, or undefined when this system cannot. */
function makeReadOnly(dir: string): (() => void) | undefined {
  if (process.getuid?.() !== 0) {
    execFileSync('chmod', ['0555', dir]);
    return () => execFileSync('chmod', ['0755', dir]);
  }
  try {
    execFileSync('chattr', ['+i', dir], { stdio: 'ignore' });
    return () => execFileSync('chattr', ['-i', dir], { stdio: 'ignore' });
  } catch {
    return undefined;
  }
}

describe('fault: storage', { skip }, () => {
  let pebble: PebbleHandle;
  let dir: string;
  before(async () => {
    pebble = await startPebble();
    dir = await mkdtemp(join(tmpdir(), 'certkeeper-storage-faults-'));
  });
  after(async () => {
    await pebble?.stop();
    if (dir) await chmod(dir, 0o755).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  });

  const caRequests = (): number => pebble.output().match(/(GET|POST|HEAD) \//g)?.length ?? 0;

  test('a read-only storage directory is a typed error before any request to the CA', async (t) => {
    const root = join(dir, 'readonly');
    await mkdir(root);
    const undo = makeReadOnly(root);
    if (!undo) {
      t.skip('cannot make a directory read-only for root here (no chattr)');
      return;
    }
    const keeper = new CertKeeper(pebbleOptions(pebble, new FileStorage({ root })));
    try {
      const before = caRequests();
      const error = await keeper.manageSync(['readonly.example.test']).then(() => assert.fail('should fail'), (e: unknown) => e);
      assert.ok(error instanceof ManageError);
      const cause = error.failures[0]?.error;
      assert.ok(cause instanceof StorageError, String(cause));
      assert.equal(cause.code, 'ERR_STORAGE');
      assert.equal(caRequests(), before, 'no request reached the CA');
    } finally {
      await keeper.close();
      undo();
    }
  });

  test('ENOSPC while storing a renewal: old files untouched, cached certificate still served', { timeout: 60_000 }, async () => {
    const name = 'full.example.test';
    const clock = new FakeClock(Date.now());
    const counted = countingStorage(new MemoryStorage());
    const keeper = new CertKeeper(pebbleOptions(pebble, counted.storage, { clock }));
    const server = https.createServer(keeper.tlsOptions(), (_req, res) => res.end('ok'));
    try {
      await keeper.manageSync([name]);
      const port = await listen(server);
      const root = await pebble.rootPem();
      const status = keeper.status(name);
      const before = await snapshot(counted.storage, 'certificates');
      const issued = pebble.issuedCount();

      // The disk fills up: certificate writes fail (the small write probes still pass, so the order is placed).
      counted.failStore = (key) => (key.startsWith('certificates/') && !key.endsWith('.probe') ? Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' }) : undefined);
      const failed = nextEvent(keeper, 'cert_failed');
      await clock.set(status.nextRenewalAt!.getTime() + 1_000);
      const failure = await failed;
      assert.match(failure.error.message, /ENOSPC/);
      assert.equal(pebble.issuedCount(), issued + 1, 'the CA did issue; only the store failed');

      counted.failStore = undefined;
      assert.deepEqual(await snapshot(counted.storage, 'certificates'), before, 'old files untouched');
      const served = await handshake(port, name, root);
      assert.equal(served.serialNumber, status.serialNumber?.toUpperCase(), 'the cached certificate is still served');
      const stored = await loadCertificateSet(counted.storage, status.issuer!, name);
      assert.equal(stored.meta.serialNumber, status.serialNumber);
    } finally {
      counted.failStore = undefined;
      await closeServer(server);
      await keeper.close();
    }
  });

  test('a truncated .crt, an empty .key, a truncated .json: only those names are obtained again, no crash', { timeout: 60_000 }, async () => {
    const root = join(dir, 'damaged');
    const names = ['crt.example.test', 'key.example.test', 'json.example.test', 'intact.example.test'];
    const first = new CertKeeper(pebbleOptions(pebble, new FileStorage({ root })));
    let issuerKey: string;
    const serials = new Map<string, string | undefined>();
    try {
      await first.manageSync(names);
      issuerKey = first.status(names[0]!).issuer!;
      for (const name of names) serials.set(name, first.status(name).serialNumber);
    } finally {
      await first.close();
    }
    const path = (key: string): string => join(root, key);
    await truncate(path(certificateKeys(issuerKey, 'crt.example.test').cert), 200);
    await writeFile(path(certificateKeys(issuerKey, 'key.example.test').key), '');
    await truncate(path(certificateKeys(issuerKey, 'json.example.test').meta), 40);

    const issued = pebble.issuedCount();
    const keeper = new CertKeeper(pebbleOptions(pebble, new FileStorage({ root })));
    const server = https.createServer(keeper.tlsOptions(), (_req, res) => res.end('ok'));
    try {
      await keeper.manageSync(names);
      assert.equal(pebble.issuedCount(), issued + 3, 'exactly the three damaged names were ordered again');
      assert.equal(keeper.status('intact.example.test').serialNumber, serials.get('intact.example.test'));
      const port = await listen(server);
      const caRoot = await pebble.rootPem();
      for (const name of names) {
        const status = keeper.status(name);
        if (name !== 'intact.example.test') assert.notEqual(status.serialNumber, serials.get(name), `${name} is new`);
        const set = await loadCertificateSet(new FileStorage({ root }), issuerKey, name);
        assert.equal(set.meta.serialNumber, status.serialNumber, `${name} stored complete`);
        const peer = await handshake(port, name, caRoot);
        assert.equal(peer.serialNumber, status.serialNumber?.toUpperCase());
      }
    } finally {
      await closeServer(server);
      await keeper.close();
    }
  });
});
