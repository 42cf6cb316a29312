/**
 * Stale-lock takeover for every shape of leftover a crash, an old version or
 * an operator can leave at a lock path (issue 14, defect 2): each is taken
 * over once it is older than lockStaleMs, and each takeover is logged once at
 * warn (caddy#4448 logged gigabytes of "lock is stale").
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { mkdir, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { FileStorage } from '../../src/storage/file.js';
import { captureLogger } from '../helpers/logging.js';

const STALE_MS = 2_000;
const base = mkdtempSync(join(tmpdir(), 'certkeeper-lock-takeover-'));
after(() => rm(base, { recursive: true, force: true }));

let counter = 0;
async function rootWithLocks(): Promise<string> {
  const root = join(base, `case-${++counter}`);
  await mkdir(join(root, 'locks'), { recursive: true, mode: 0o700 });
  return root;
}

async function age(path: string): Promise<void> {
  const past = new Date(Date.now() - 60_000);
  await utimes(path, past, past);
}

interface LogLine {
  level: number;
  msg: string;
  lock?: string;
  leftover?: string;
}

function lines(text: string): LogLine[] {
  return text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as LogLine);
}

const shapes: Array<{ shape: string; plant: (lockPath: string) => Promise<void> }> = [
  { shape: 'an empty regular file', plant: (p) => writeFile(p, '') },
  { shape: 'a regular file with garbage', plant: (p) => writeFile(p, '{"certmagic":"lock", garbage \u0000\u0001') },
  { shape: 'an empty folder', plant: (p) => mkdir(p) },
  {
    shape: 'a folder with garbage inside',
    plant: async (p) => {
      await mkdir(join(p, 'sub'), { recursive: true });
      await writeFile(join(p, 'pid'), '12345');
      await writeFile(join(p, 'sub', 'junk'), 'x');
      await age(join(p, 'sub'));
    },
  },
];

describe('FileStorage stale-lock takeover', () => {
  for (const { shape, plant } of shapes) {
    it(`takes over ${shape} left at a lock path, and logs it once at warn`, async () => {
      const root = await rootWithLocks();
      const lockPath = join(root, 'locks', 'name.lock');
      await plant(lockPath);
      await age(lockPath);
      const { logger, text } = captureLogger('debug');
      const storage = new FileStorage({ root, lockStaleMs: STALE_MS, logger });
      try {
        assert.equal(await storage.tryLock('name'), true);
        // Ours now: a real lock directory, held and released normally.
        assert.equal((await stat(lockPath)).isDirectory(), true);
        await storage.assertLockHeld('name');
        await storage.unlock('name');
        await assert.rejects(stat(lockPath), { code: 'ENOENT' });
        // A second round finds nothing stale: no second takeover log.
        assert.equal(await storage.tryLock('name'), true);
        await storage.unlock('name');
      } finally {
        await storage.close();
      }
      const takeovers = lines(text()).filter((l) => /stale lock/.test(l.msg));
      assert.equal(takeovers.length, 1, text());
      assert.equal(takeovers[0]?.level, 40);
      assert.equal(takeovers[0]?.lock, 'name');
    });

    it(`waits for ${shape} that is not stale yet, without logging a takeover`, async () => {
      const root = await rootWithLocks();
      const lockPath = join(root, 'locks', 'fresh.lock');
      await plant(lockPath);
      const { logger, text } = captureLogger('debug');
      const storage = new FileStorage({ root, lockStaleMs: STALE_MS, logger });
      try {
        assert.equal(await storage.tryLock('fresh'), false);
        assert.equal(await storage.tryLock('fresh'), false);
      } finally {
        await storage.close();
      }
      assert.equal(lines(text()).filter((l) => /stale lock/.test(l.msg)).length, 0);
    });
  }

  it('lock() obtains a name whose lock path holds an empty file once it is stale', { timeout: 20_000 }, async () => {
    const root = await rootWithLocks();
    const lockPath = join(root, 'locks', 'waited.lock');
    await writeFile(lockPath, '');
    const storage = new FileStorage({ root, lockStaleMs: STALE_MS });
    try {
      // Not aged: lock() must keep polling until the file turns stale, then take it over.
      await storage.lock('waited', { timeoutMs: 15_000 });
      assert.equal((await stat(lockPath)).isDirectory(), true);
    } finally {
      await storage.close();
    }
  });
});
