/**
 * Two attempts of one FileStorage to take the same lock at the same moment (a
 * renewal's lock() poll and an ARI refresh's tryLock): the one that wins must
 * still be released by unlock() after its lock was refreshed. It was not: the
 * loser's cleanup dropped the winner's record, the winner's refreshes then
 * looked like another holder's, unlock() left the lock directory in place and
 * proper-lockfile kept refreshing it, so the name could never be locked again
 * (renewals that stalled silently in the ARI drill).
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { FileStorage } from '../../src/storage/file.js';

const base = mkdtempSync(join(tmpdir(), 'certkeeper-lock-concurrent-'));
after(() => rm(base, { recursive: true, force: true }));

/** Waits until the holder's refresher has touched the lock directory (its mtime moved). */
async function waitForRefresh(lockDir: string): Promise<void> {
  const first = (await stat(lockDir)).mtimeMs;
  while ((await stat(lockDir)).mtimeMs === first) await new Promise((r) => setTimeout(r, 100));
}

describe('FileStorage: concurrent attempts to take one lock', () => {
  for (const how of ['tryLock and tryLock', 'lock and tryLock'] as const) {
    it(`${how}: exactly one wins, and unlock() after a refresh really releases it`, async () => {
      const root = join(base, how.replace(/ /g, '-'));
      const storage = new FileStorage({ root, lockStaleMs: 2_000, lockRefreshMs: 1_000 });
      try {
        const first = how === 'tryLock and tryLock' ? storage.tryLock('cert_x') : storage.lock('cert_x').then(() => true);
        const results = await Promise.all([first, storage.tryLock('cert_x')]);
        assert.equal(results.filter(Boolean).length, 1, `results ${results}`);
        await waitForRefresh(join(root, 'locks', 'cert_x.lock'));
        await storage.unlock('cert_x');
        await assert.rejects(stat(join(root, 'locks', 'cert_x.lock')), { code: 'ENOENT' });
        assert.equal(await storage.tryLock('cert_x'), true);
        await storage.unlock('cert_x');
      } finally {
        await storage.close();
      }
    });
  }
});
