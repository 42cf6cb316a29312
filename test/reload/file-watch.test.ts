import assert from 'node:assert/strict';
import { mkdir, realpath, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FileWatcher, resolveWatchTuning, DEFAULT_RELOAD_DEBOUNCE_MS, DEFAULT_RELOAD_RECHECK_MS } from '../../src/tls/file-watch.js';
import { FakeClock } from '../../src/testing/fake-clock.js';
import { silentLogger } from '../helpers/logging.js';
import { makeTempDir } from './helpers.js';

let temp: { dir: string; cleanup: () => Promise<void> };
before(async () => {
  temp = await makeTempDir('certkeeper-watch-');
  temp.dir = await realpath(temp.dir);
});
after(() => temp.cleanup());

function watcher(paths: string[], clock: FakeClock, check: () => Promise<void>, recheckIntervalMs = 60_000): FileWatcher {
  return new FileWatcher(paths, { clock, logger: silentLogger(), debounceMs: 100, maxWaitMs: 1_000, recheckIntervalMs, check });
}

describe('FileWatcher', () => {
  it('watches the directory of every symlink hop (Kubernetes ..data, certbot live/ -> archive/)', async () => {
    const mount = join(temp.dir, 'k8s');
    await mkdir(join(mount, '..2026_01_01'), { recursive: true });
    await writeFile(join(mount, '..2026_01_01', 'tls.crt'), 'x');
    await symlink('..2026_01_01', join(mount, '..data'));
    await symlink('..data/tls.crt', join(mount, 'tls.crt'));
    const live = join(temp.dir, 'le', 'live', 'a');
    const archive = join(temp.dir, 'le', 'archive', 'a');
    await mkdir(live, { recursive: true });
    await mkdir(archive, { recursive: true });
    await writeFile(join(archive, 'fullchain1.pem'), 'x');
    await symlink('../../archive/a/fullchain1.pem', join(live, 'fullchain.pem'));

    const clock = new FakeClock(Date.now());
    const w = watcher([join(mount, 'tls.crt'), join(live, 'fullchain.pem')], clock, async () => {});
    await w.start();
    try {
      assert.deepEqual(w.directories.sort(), [mount, join(mount, '..2026_01_01'), live, archive].sort());
    } finally {
      w.close();
    }
  });

  it('falls back on the periodic re-check when the directory does not exist yet, then watches it', async () => {
    const dir = join(temp.dir, 'later');
    const clock = new FakeClock(Date.now());
    let checks = 0;
    const w = watcher([join(dir, 'cert.pem')], clock, async () => {
      checks++;
    });
    await w.start();
    try {
      assert.deepEqual(w.directories, []);
      await mkdir(dir);
      await clock.advance(59_999);
      assert.equal(checks, 0);
      await clock.advance(1);
      assert.equal(checks, 1);
      // The check re-resolves the directories: the new one is watched from now on.
      for (let i = 0; i < 50 && w.directories.length === 0; i++) await new Promise((r) => setTimeout(r, 5));
      assert.deepEqual(w.directories, [dir]);
      await clock.advance(60_000);
      assert.equal(checks, 2, 'the re-check keeps running');
    } finally {
      w.close();
    }
    assert.equal(clock.pendingTimers, 0, 'close() cancels every timer');
  });

  it('never runs two checks at once: triggers during a check make exactly one more', async () => {
    const clock = new FakeClock(Date.now());
    let running = 0;
    let maxRunning = 0;
    let checks = 0;
    let release: () => void = () => {};
    const w = watcher([join(temp.dir, 'none.pem')], clock, async () => {
      checks++;
      running++;
      maxRunning = Math.max(maxRunning, running);
      await new Promise<void>((resolve) => {
        release = resolve;
      });
      running--;
    }, 0);
    const first = w.trigger();
    const during = [w.trigger(), w.trigger(), w.trigger()];
    release();
    await new Promise((r) => setImmediate(r));
    for (let i = 0; i < 50 && checks < 2; i++) await new Promise((r) => setTimeout(r, 5));
    release();
    await Promise.all([first, ...during]);
    assert.equal(checks, 2);
    assert.equal(maxRunning, 1);
    w.close();
  });

  it('validates its tuning options by name', () => {
    assert.deepEqual(resolveWatchTuning({}, ''), { debounceMs: DEFAULT_RELOAD_DEBOUNCE_MS, maxWaitMs: 1_000, recheckIntervalMs: DEFAULT_RELOAD_RECHECK_MS });
    assert.equal(resolveWatchTuning({ recheckIntervalMs: 0 }, '').recheckIntervalMs, 0);
    assert.throws(() => resolveWatchTuning({ debounceMs: -1 }, 'clientCA.'), { code: 'ERR_INVALID_OPTION', message: /clientCA\.debounceMs/ });
  });
});
