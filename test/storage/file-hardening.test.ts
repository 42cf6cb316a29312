/**
 * FileStorage refuses to read or write through symlinks below its root and
 * refuses a root or folder another user can write (issue 14, defect 7), like
 * ssh's StrictModes for ~/.ssh: a user who can write there could plant a
 * self-consistent certificate set that a restarted keeper would serve.
 * Tests run as root: "another user" is `nobody`, through chown.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { chmod, chown, lstat, mkdir, readFile, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { FileStorage } from '../../src/storage/file.js';

const base = mkdtempSync(join(tmpdir(), 'certkeeper-file-hardening-'));
after(() => rm(base, { recursive: true, force: true }));
const NOBODY = 65_534;
const isRoot = process.getuid?.() === 0;

let counter = 0;
async function fresh(): Promise<{ root: string; outside: string }> {
  const dir = join(base, `case-${++counter}`);
  const root = join(dir, 'root');
  const outside = join(dir, 'outside');
  await mkdir(root, { recursive: true, mode: 0o700 });
  await mkdir(outside, { recursive: true, mode: 0o700 });
  return { root, outside };
}

const insecure = (path: RegExp) => (err: Error & { code?: string; path?: string }) => {
  assert.equal(err.code, 'ERR_STORAGE_INSECURE', err.message);
  assert.match(err.path ?? '', path);
  return true;
};

async function mode(path: string): Promise<number> {
  return (await stat(path)).mode & 0o777;
}

describe('FileStorage hardening', () => {
  it('refuses to write or read through a symlinked folder below the root; nothing lands outside', async () => {
    const { root, outside } = await fresh();
    await symlink(outside, join(root, 'certificates'));
    await mkdir(join(outside, 'issuer', 'a.test'), { recursive: true, mode: 0o700 });
    await writeFile(join(outside, 'issuer', 'a.test', 'a.test.crt'), 'planted', { mode: 0o600 });
    const storage = new FileStorage({ root });
    try {
      await assert.rejects(storage.store('certificates/issuer/b.test/b.test.key', Buffer.from('secret key')), insecure(/certificates$/));
      await assert.rejects(storage.load('certificates/issuer/a.test/a.test.crt'), insecure(/certificates$/));
      await assert.rejects(storage.delete('certificates/issuer/a.test'), insecure(/certificates$/));
      await assert.rejects(storage.list('certificates/issuer', false), insecure(/certificates$/));
      assert.deepEqual(await readdir(join(outside, 'issuer')), ['a.test'], 'nothing written outside the root');
      assert.equal(await readFile(join(outside, 'issuer', 'a.test', 'a.test.crt'), 'utf8'), 'planted', 'nothing deleted outside the root');
    } finally {
      await storage.close();
    }
  });

  it('never reads a symlinked file, and a write replaces the link instead of following it', async () => {
    const { root, outside } = await fresh();
    const target = join(outside, 'elsewhere.key');
    await writeFile(target, 'outside data', { mode: 0o600 });
    await mkdir(join(root, 'a'), { mode: 0o700 });
    await symlink(target, join(root, 'a', 'b.key'));
    const storage = new FileStorage({ root });
    try {
      await assert.rejects(storage.load('a/b.key'), insecure(/b\.key$/));
      await storage.store('a/b.key', Buffer.from('new'));
      assert.equal((await lstat(join(root, 'a', 'b.key'))).isFile(), true);
      assert.equal(await readFile(target, 'utf8'), 'outside data');
      assert.equal((await storage.load('a/b.key')).toString(), 'new');
    } finally {
      await storage.close();
    }
  });

  it('refuses a world-writable root, naming it, and writes nothing', async () => {
    const { root } = await fresh();
    await chmod(root, 0o777);
    const storage = new FileStorage({ root });
    try {
      await assert.rejects(storage.store('a/b', Buffer.from('x')), (err: Error & { code?: string; path?: string }) => {
        insecure(/root$/)(err);
        assert.match(err.message, /writable by other users/);
        assert.match(err.message, /chmod go-w/);
        return true;
      });
      await assert.rejects(storage.load('a/b'), insecure(/root$/));
      await assert.rejects(storage.tryLock('l'), insecure(/root$/));
      assert.deepEqual(await readdir(root), []);
    } finally {
      await storage.close();
    }
  });

  it('refuses a group-writable folder below the root', async () => {
    const { root } = await fresh();
    await mkdir(join(root, 'certificates'), { mode: 0o700 });
    await chmod(join(root, 'certificates'), 0o770);
    const storage = new FileStorage({ root });
    try {
      await assert.rejects(storage.store('certificates/x/y', Buffer.from('x')), insecure(/certificates$/));
    } finally {
      await storage.close();
    }
  });

  it('refuses a root, a folder or a file owned by another user', { skip: !isRoot && 'needs root to chown' }, async () => {
    const { root } = await fresh();
    await chown(root, NOBODY, NOBODY);
    const a = new FileStorage({ root });
    try {
      await assert.rejects(a.load('k'), (err: Error & { code?: string }) => {
        insecure(/root$/)(err);
        assert.match(err.message, /owned by uid 65534/);
        return true;
      });
    } finally {
      await a.close();
    }

    const second = await fresh();
    await mkdir(join(second.root, 'certificates', 'i', 'n'), { recursive: true, mode: 0o700 });
    await writeFile(join(second.root, 'certificates', 'i', 'n', 'n.crt'), 'swapped in', { mode: 0o600 });
    await chown(join(second.root, 'certificates', 'i', 'n', 'n.crt'), NOBODY, NOBODY);
    await chown(join(second.root, 'certificates', 'i'), NOBODY, NOBODY);
    const b = new FileStorage({ root: second.root });
    try {
      await assert.rejects(b.load('certificates/i/n/n.crt'), insecure(/certificates\/i$/));
      await chown(join(second.root, 'certificates', 'i'), 0, 0);
      await assert.rejects(b.load('certificates/i/n/n.crt'), insecure(/n\.crt$/));
    } finally {
      await b.close();
    }
  });

  it('accepts a root that is itself a symlink to a safe folder (set up by the admin)', async () => {
    const { root, outside } = await fresh();
    const link = join(root, '..', 'link-to-outside');
    await symlink(outside, link);
    const storage = new FileStorage({ root: link });
    try {
      await storage.store('a/b.key', Buffer.from('v'));
      assert.equal((await storage.load('a/b.key')).toString(), 'v');
      assert.equal(await mode(join(outside, 'a', 'b.key')), 0o600);
    } finally {
      await storage.close();
    }
  });

  it('keeps files 0600 and folders 0700, and refuses a stored file other users can write', async () => {
    const { root } = await fresh();
    const storage = new FileStorage({ root });
    try {
      await storage.store('certificates/i/n/n.key', Buffer.from('k'));
      assert.equal(await mode(join(root, 'certificates', 'i', 'n', 'n.key')), 0o600);
      for (const dir of ['certificates', 'certificates/i', 'certificates/i/n']) assert.equal(await mode(join(root, dir)), 0o700, dir);
      await chmod(join(root, 'certificates', 'i', 'n', 'n.key'), 0o666);
      await assert.rejects(storage.load('certificates/i/n/n.key'), insecure(/n\.key$/));
    } finally {
      await storage.close();
    }
  });

  it('refuses a symlinked locks folder', async () => {
    const { root, outside } = await fresh();
    await symlink(outside, join(root, 'locks'));
    const storage = new FileStorage({ root });
    try {
      await assert.rejects(storage.tryLock('name'), insecure(/locks$/));
      assert.deepEqual(await readdir(outside), []);
    } finally {
      await storage.close();
    }
  });
});
