/**
 * Temp files (`.tmp-*`) left below the root by writers killed between write
 * and rename may hold private keys: each FileStorage instance removes the
 * stale ones once, in the background.
 */
import type * as fs from 'node:fs';
import { lstat, readdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { LOCKS_FOLDER, STALE_TEMP_FILE_MS, TEMP_NAME } from './file-options.js';

/** Removes temp files older than STALE_TEMP_FILE_MS below `root` (lock directories excepted); resolves with how many. */
export async function sweepStaleTempFiles(root: string, signal: AbortSignal): Promise<number> {
  const cutoff = Date.now() - STALE_TEMP_FILE_MS;
  let removed = 0;
  const walk = async (dir: string): Promise<void> => {
    let entries: fs.Dirent[];
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const entry of entries) {
      if (signal.aborted) return;
      const path = join(dir, entry.name);
      // Dirents of symlinks are neither: links are never followed.
      if (entry.isDirectory()) {
        if (dir !== root || entry.name !== LOCKS_FOLDER) await walk(path);
      } else if (entry.isFile() && TEMP_NAME.test(entry.name)) {
        const info = await lstat(path).catch(() => undefined);
        if (info && info.mtimeMs < cutoff && (await unlink(path).then(() => true, () => false))) removed++;
      }
    }
  };
  await walk(root);
  return removed;
}
