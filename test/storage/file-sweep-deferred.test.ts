import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { FileStorage } from '../../src/storage/file.js';
import { STALE_TEMP_FILE_MS, TEMP_SWEEP_DELAY_MS } from '../../src/storage/file-options.js';

describe('FileStorage temp-file sweep', () => {
  it('waits TEMP_SWEEP_DELAY_MS after the first operation (start-up reads the same folders), and runs when asked', async () => {
    const root = await mkdtemp(join(tmpdir(), 'certkeeper-sweep-'));
    try {
      const folder = join(root, 'certificates', 'internal-local', 'a.test');
      await mkdir(folder, { recursive: true, mode: 0o700 });
      const temp = join(folder, '.tmp-0123456789abcdef');
      await writeFile(temp, 'left by a killed writer', { mode: 0o600 });
      const old = new Date(Date.now() - 2 * STALE_TEMP_FILE_MS);
      await utimes(temp, old, old);
      await writeFile(join(folder, 'a.test.crt'), 'x', { mode: 0o600 });

      assert.ok(TEMP_SWEEP_DELAY_MS >= STALE_TEMP_FILE_MS, 'the delayed sweep also catches files that were young at start');
      const storage = new FileStorage({ root });
      assert.deepEqual(await storage.list('certificates/internal-local', false), ['certificates/internal-local/a.test']);
      assert.equal((await storage.load('certificates/internal-local/a.test/a.test.crt')).toString(), 'x');
      assert.ok((await readdir(folder)).includes('.tmp-0123456789abcdef'), 'not swept during start-up');
      assert.equal(await storage.sweepTempFiles(), 1);
      assert.ok(!(await readdir(folder)).includes('.tmp-0123456789abcdef'));
      // close() does not wait for the delay: the timer is released.
      await storage.close();
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it('close() before the delay releases the timer without sweeping', async () => {
    const root = await mkdtemp(join(tmpdir(), 'certkeeper-sweep-'));
    try {
      const storage = new FileStorage({ root });
      await storage.store('a/b', Buffer.from('v'));
      await storage.close();
      assert.equal(await storage.sweepTempFiles().catch(() => 0), 0);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
