/**
 * SIGKILL aimed at the write-to-rename window of FileStorage's atomic writes
 * (issue 14, fault tests): a child process storing a new certificate set is
 * stopped, by a test hook, right after a temp file is written and synced and
 * before its rename, for each of the four writes of a set, and killed there.
 * Afterwards the set on disk is complete (the previous one, or the new one
 * rolled forward from `.pending`), and the next FileStorage removes the
 * orphaned temp file (it may hold a private key): no `.tmp-*` and no 0-byte
 * file is left. Then a renewal in the same folder keeps 0600 files and 0700
 * folders.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, readdir, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { buildCertificateMeta, loadCertificateSet, saveCertificateSet } from '../../src/storage/certificates.js';
import { FileStorage, STALE_TEMP_FILE_MS } from '../../src/storage/file.js';
import { certificateKeys } from '../../src/storage/layout.js';
import { silentLogger } from '../helpers/logging.js';
import { createTestCa, createTestLeaf } from '../helpers/tls-certs.js';
import { onJsonLines } from '../helpers/json-lines.js';

const WRITER = fileURLToPath(new URL('./fixtures/rename-window-writer.ts', import.meta.url));
const ISSUER = 'rename-window';
const NAME = 'window.example.test';
const keys = certificateKeys(ISSUER, NAME);

async function walk(dir: string): Promise<Array<{ path: string; name: string; size: number; mode: number; isDir: boolean }>> {
  const out: Array<{ path: string; name: string; size: number; mode: number; isDir: boolean }> = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    const info = await stat(path);
    out.push({ path, name: entry.name, size: info.size, mode: info.mode & 0o777, isDir: entry.isDirectory() });
    if (entry.isDirectory()) out.push(...(await walk(path)));
  }
  return out;
}

describe('fault: SIGKILL between write and rename', () => {
  let work: string;
  let oldSet: { certPem: string; keyPem: string };
  let newSetFile: string;
  let newSet: { certPem: string; keyPem: string };
  const children = new Set<ChildProcess>();

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'certkeeper-rename-window-'));
    const ca = await createTestCa();
    const a = await createTestLeaf(ca, { names: [NAME] });
    const b = await createTestLeaf(ca, { names: [NAME] });
    oldSet = { certPem: a.chainPem, keyPem: a.keyPem };
    newSet = { certPem: b.chainPem, keyPem: b.keyPem };
    newSetFile = join(work, 'new-set.json');
    await writeFile(newSetFile, JSON.stringify(newSet), { mode: 0o600 });
  });
  after(async () => {
    for (const child of children) child.kill('SIGKILL');
    await rm(work, { recursive: true, force: true });
  });

  for (const step of ['pending', 'key', 'crt', 'json'] as const) {
    it(`killed before renaming .${step}: the set is complete, the temp file is collected, modes stay 0600/0700`, { timeout: 60_000 }, async () => {
      const root = join(work, step);
      const first = new FileStorage({ root, logger: silentLogger() });
      await saveCertificateSet(first, { ...oldSet, meta: buildCertificateMeta({ ...oldSet, issuerKey: ISSUER, names: [NAME] }) });
      await first.close();

      const child = spawn(process.execPath, ['--import', 'tsx', WRITER, root, newSetFile, NAME], {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, CERTKEEPER_TEST: '1', CERTKEEPER_FAULT_BEFORE_RENAME: `${NAME}.${step}` },
      });
      children.add(child);
      let stderr = '';
      child.stderr?.on('data', (chunk) => (stderr += String(chunk)));
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      // The first report: paused in the window, or (no hook) stored; exit before either is a failure.
      const paused = await Promise.race([
        new Promise<{ event: string; temp?: string }>((resolve) => onJsonLines(child.stdout, (v) => resolve(v as { event: string; temp?: string }), () => undefined)),
        exited.then(() => ({ event: 'exited' }) as { event: string; temp?: string }),
      ]);
      assert.equal(paused?.event, 'paused-before-rename', `the writer reached the window (stderr: ${stderr})`);
      child.kill('SIGKILL');
      await exited;
      children.delete(child);

      // The kill landed in the window: a synced temp file with the value, next to the target.
      const temp = paused.temp!;
      const tempInfo = await stat(temp);
      assert.ok(tempInfo.size > 0);
      // As if the next start came a while later (a live write is never that old).
      const past = new Date(Date.now() - STALE_TEMP_FILE_MS - 1_000);
      await utimes(temp, past, past);

      const next = new FileStorage({ root, logger: silentLogger() });
      try {
        const loaded = await loadCertificateSet(next, ISSUER, NAME);
        // Killed before .pending existed: the old set; after: the new one, rolled forward.
        assert.equal(loaded.certPem, step === 'pending' ? oldSet.certPem : newSet.certPem);
        assert.equal(loaded.keyPem, step === 'pending' ? oldSet.keyPem : newSet.keyPem);
        assert.equal(await next.sweepTempFiles(), 1, 'the orphaned temp file was removed');
        const left = await walk(root);
        assert.deepEqual(left.filter((f) => f.name.startsWith('.tmp-')).map((f) => f.path), [], 'no temp file left');
        assert.deepEqual(left.filter((f) => !f.isDir && f.size === 0 && !f.path.includes('/locks/')).map((f) => f.path), [], 'no 0-byte file');
        assert.equal(await next.exists(keys.pending), false, 'the roll-forward completed');

        // A renewal in the same folder afterwards: files 0600, folders 0700.
        await saveCertificateSet(next, { ...oldSet, meta: buildCertificateMeta({ ...oldSet, issuerKey: ISSUER, names: [NAME] }) });
        for (const f of await walk(root)) {
          if (f.path.includes('/locks/')) continue;
          assert.equal(f.mode, f.isDir ? 0o700 : 0o600, `${f.path} mode ${f.mode.toString(8)}`);
        }
        assert.equal((await stat(root)).mode & 0o777, 0o700);
      } finally {
        await next.close();
      }
    });
  }
});
