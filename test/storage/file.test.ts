import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync } from 'node:fs';
import { mkdir, readdir, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { checkStorageWritable } from '../../src/storage/check.js';
import { FileStorage, defaultFileStorageRoot, resolveFileStorageOptions } from '../../src/storage/file.js';
import { runStorageConformance } from '../../src/testing/index.js';
import { findBinary } from '../helpers/system.js';

const STALE_MS = 2_000;
const base = mkdtempSync(join(tmpdir(), 'certkeeper-file-storage-'));
const WORKER = fileURLToPath(new URL('./fixtures/lock-worker.ts', import.meta.url));
const children = new Set<ChildProcess>();

after(async () => {
  for (const child of children) child.kill('SIGKILL');
  await rm(base, { recursive: true, force: true });
});

let dirCounter = 0;
function freshDir(): string {
  return join(base, `case-${++dirCounter}`);
}

const sharedRoot = join(base, 'conformance');
runStorageConformance({
  name: 'file',
  createStorage: async () => new FileStorage({ root: sharedRoot, lockStaleMs: STALE_MS }),
  staleLockMs: STALE_MS,
  abandonLock: async (storage, name) => (storage as FileStorage).abandonLock(name),
});

async function walk(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    out.push(path);
    if (entry.isDirectory()) out.push(...(await walk(path)));
  }
  return out;
}

function mode(path: string): Promise<number> {
  return stat(path).then((s) => s.mode & 0o777);
}

function startWorker(args: string[]): ChildProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', WORKER, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

async function exitCode(child: ChildProcess): Promise<number | null> {
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  if (code !== 0) console.error(stderr);
  return code;
}

describe('FileStorage', () => {
  describe('options', () => {
    it('defaults the root to $XDG_DATA_HOME/certkeeper, else ~/.local/share/certkeeper', () => {
      assert.equal(defaultFileStorageRoot({ XDG_DATA_HOME: '/srv/data' }), '/srv/data/certkeeper');
      assert.match(defaultFileStorageRoot({}), /\/\.local\/share\/certkeeper$/);
      assert.match(defaultFileStorageRoot({ XDG_DATA_HOME: 'relative/dir' }), /\/\.local\/share\/certkeeper$/);
    });

    it('resolves defaults and rejects bad values, naming the option', () => {
      const input = { root: 'rel' };
      const resolved = resolveFileStorageOptions(input);
      assert.equal(resolved.root, join(process.cwd(), 'rel'));
      assert.equal(resolved.lockStaleMs, 10_000);
      assert.equal(resolved.lockRefreshMs, 5_000);
      assert.ok(Object.isFrozen(resolved));
      assert.deepEqual(input, { root: 'rel' });
      assert.throws(() => resolveFileStorageOptions({ lockStaleMs: 500 }), { code: 'ERR_INVALID_OPTION', option: 'lockStaleMs' });
      assert.throws(() => resolveFileStorageOptions({ lockStaleMs: 4_000, lockRefreshMs: 3_000 }), { option: 'lockRefreshMs' });
      assert.throws(() => resolveFileStorageOptions({ root: '' }), { option: 'root' });
      assert.throws(() => resolveFileStorageOptions({ logger: {} as never }), { option: 'logger' });
    });
  });

  describe('files on disk', () => {
    for (const umask of [0o022, 0o000, 0o077, 0o277]) {
      it(`creates files 0600 and directories 0700 under umask ${umask.toString(8).padStart(3, '0')}`, async () => {
        const root = join(freshDir(), 'nested-root');
        const previous = process.umask(umask);
        try {
          const storage = new FileStorage({ root });
          await storage.store('a/b/value.key', Buffer.from('secret'));
          await storage.lock('some_lock');
          await storage.close();
        } finally {
          process.umask(previous);
        }
        assert.equal(await mode(join(root, 'a/b/value.key')), 0o600);
        assert.equal(await mode(join(root, 'a/b')), 0o700);
        assert.equal(await mode(join(root, 'a')), 0o700);
        assert.equal(await mode(root), 0o700);
        assert.equal(await mode(join(root, 'locks')), 0o700);
      });
    }

    it('leaves no temp files behind, also when racing writers and when a write fails', async () => {
      const root = freshDir();
      const storage = new FileStorage({ root });
      await Promise.all(Array.from({ length: 20 }, (_, i) => storage.store('d/value', Buffer.alloc(10_000, i))));
      await storage.store('d/dir/inner', Buffer.from('x'));
      // Replacing a directory with a file fails (EISDIR): the temp file must still go.
      await assert.rejects(storage.store('d/dir', Buffer.from('y')), { code: 'ERR_STORAGE' });
      const names = (await walk(root)).map((p) => p.slice(root.length + 1)).sort();
      assert.deepEqual(names, ['d', 'd/dir', 'd/dir/inner', 'd/value']);
      await storage.close();
    });

    it('reports a missing key as not found even when a path component is a file', async () => {
      const storage = new FileStorage({ root: freshDir() });
      await storage.store('file', Buffer.from('x'));
      await assert.rejects(storage.load('file/child'), { code: 'ERR_STORAGE_NOT_FOUND' });
      await assert.rejects(storage.load('nowhere'), { code: 'ERR_STORAGE_NOT_FOUND' });
      assert.equal(await storage.exists('file/child'), false);
      await storage.close();
    });

    it('never creates or deletes anything outside the root for traversal keys', async () => {
      const parent = freshDir();
      const root = join(parent, 'root');
      await mkdir(parent, { recursive: true });
      await writeFile(join(parent, 'foo'), 'outside');
      const storage = new FileStorage({ root });
      await storage.store('inside', Buffer.from('ok'));
      const hostile = ['../foo', 'a/../../foo', 'b\\..\\..\\foo', './.', '\0', '%2e%2e/foo', '..', '/tmp/x', 'a/%2F../foo', 'x/../../../foo'];
      for (const key of hostile) {
        await storage.store(key, Buffer.from('evil')).catch(() => undefined);
        await storage.delete(key).catch(() => undefined);
        await storage.list(key, true).catch(() => undefined);
      }
      const outside = (await readdir(parent)).sort();
      assert.deepEqual(outside, ['foo', 'root']);
      assert.equal((await stat(join(parent, 'foo'))).size, 'outside'.length);
      await storage.close();
    });

    it('fails with StorageError on a read-only root, and checkStorageWritable says so', async (t) => {
      const root = freshDir();
      await mkdir(root, { recursive: true, mode: 0o700 });
      const isRoot = process.getuid?.() === 0;
      // chmod does not stop root; the immutable attribute does.
      if (isRoot) {
        if (!findBinary('chattr')) return t.skip('running as root without chattr');
        try {
          execFileSync('chattr', ['+i', root], { stdio: 'ignore' });
        } catch {
          return t.skip('running as root and chattr +i is not supported here');
        }
      } else {
        await import('node:fs/promises').then((f) => f.chmod(root, 0o500));
      }
      try {
        const storage = new FileStorage({ root });
        await assert.rejects(storage.store('a/b', Buffer.from('x')), (err: Error & { code?: string }) => {
          assert.equal(err.code, 'ERR_STORAGE');
          assert.match(err.message, /EACCES|EPERM|EROFS/);
          assert.match(err.message, /writable/);
          return true;
        });
        await assert.rejects(checkStorageWritable(storage), (err: Error & { code?: string }) => {
          assert.equal(err.code, 'ERR_STORAGE');
          assert.match(err.message, /Storage check failed: cannot write to storage/);
          return true;
        });
        await storage.close();
      } finally {
        if (isRoot) execFileSync('chattr', ['-i', root]);
      }
    });
  });

  describe('locks', () => {
    it('keeps a held lock fresh past the stale period', { timeout: 20_000 }, async () => {
      const root = freshDir();
      const a = new FileStorage({ root, lockStaleMs: STALE_MS });
      const b = new FileStorage({ root, lockStaleMs: STALE_MS });
      await a.lock('held');
      await new Promise((r) => setTimeout(r, STALE_MS + 700));
      assert.equal(await b.tryLock('held'), false);
      await a.assertLockHeld('held');
      await a.close();
      assert.equal(await b.tryLock('held'), true);
      await b.close();
    });

    it('notices a takeover in assertLockHeld and leaves the new holder\'s lock alone on unlock', async () => {
      const root = freshDir();
      const a = new FileStorage({ root, lockStaleMs: STALE_MS });
      const b = new FileStorage({ root, lockStaleMs: STALE_MS });
      await a.lock('taken');
      // As if a had been frozen: its lock looks stale to everyone else.
      const past = new Date(Date.now() - 60_000);
      await utimes(join(root, 'locks', 'taken.lock'), past, past);
      assert.equal(await b.tryLock('taken'), true);
      await assert.rejects(a.assertLockHeld('taken'), { code: 'ERR_LOCK_LOST' });
      await a.unlock('taken');
      await b.assertLockHeld('taken');
      assert.equal(await a.tryLock('taken'), false);
      await b.close();
      await a.close();
    });

    it('refuses use after close and cancels a waiting lock()', async () => {
      const root = freshDir();
      const a = new FileStorage({ root });
      const b = new FileStorage({ root });
      await a.lock('l');
      const waiting = b.lock('l');
      await b.close();
      await assert.rejects(waiting, { code: 'ERR_CLOSED' });
      await assert.rejects(b.store('k', Buffer.from('x')), { code: 'ERR_CLOSED' });
      await a.close();
    });

    it('excludes each other across two processes sharing a root', { timeout: 60_000 }, async () => {
      const root = freshDir();
      await mkdir(root, { recursive: true });
      const counter = join(root, 'counter');
      await writeFile(counter, '0');
      const workers = [startWorker(['contend', root, 'shared', counter, '15']), startWorker(['contend', root, 'shared', counter, '15'])];
      const codes = await Promise.all(workers.map(exitCode));
      assert.deepEqual(codes, [0, 0]);
      assert.equal((await import('node:fs/promises').then((f) => f.readFile(counter, 'utf8'))).trim(), '30');
    });

    it("does not remove a lock taken over from it when it exits", { timeout: 60_000 }, async () => {
      const root = freshDir();
      // Long stale period: the child will not refresh (and so notice) before it exits.
      const holder = startWorker(['hold', root, 'overtaken', '20000']);
      const [line] = (await once(holder.stdout!, 'data')) as [Buffer];
      assert.equal(line.toString().trim(), 'locked');
      const past = new Date(Date.now() - 60_000);
      await utimes(join(root, 'locks', 'overtaken.lock'), past, past);
      const storage = new FileStorage({ root, lockStaleMs: STALE_MS });
      assert.equal(await storage.tryLock('overtaken'), true);
      holder.kill('SIGTERM');
      await once(holder, 'exit');
      await storage.assertLockHeld('overtaken');
      await storage.close();
    });

    it('takes over the lock of a process killed while holding it', { timeout: 60_000 }, async () => {
      const root = freshDir();
      const holder = startWorker(['hold', root, 'crashy']);
      const [line] = (await once(holder.stdout!, 'data')) as [Buffer];
      assert.equal(line.toString().trim(), 'locked');
      const storage = new FileStorage({ root, lockStaleMs: STALE_MS });
      assert.equal(await storage.tryLock('crashy'), false);
      holder.kill('SIGKILL');
      await once(holder, 'exit');
      await storage.lock('crashy', { timeoutMs: 20_000 });
      await storage.assertLockHeld('crashy');
      await storage.close();
    });
  });
});
