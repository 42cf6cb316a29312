/**
 * Watches a few files for replacement the way tools really replace them:
 * editors and `mv` rename over the file, Kubernetes swaps a `..data` symlink
 * in the mount directory, certbot re-points `live/` symlinks at new files in
 * `archive/`. So the DIRECTORIES are watched (the file's own directory, and
 * the directory of every hop of its symlink chain), never the file itself,
 * whose inode a rename leaves behind.
 *
 * Events are debounced (a writer that replaces the certificate and then the
 * key produces a burst), and a slow timer re-runs the check in case an event
 * was missed (network file systems, a directory that did not exist yet). The
 * check itself decides whether anything changed; the watcher only says when
 * to look. Checks never overlap: an event during a check schedules one more.
 */
import fs, { type FSWatcher } from 'node:fs';
import { lstat, readlink, realpath } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import type { Clock, TimerHandle } from '../clock.js';
import { Closable } from '../lifecycle.js';
import type { Logger } from '../logger.js';
import { durationMs } from '../validate.js';
import { DEFAULT_RELOAD_DEBOUNCE_MS, DEFAULT_RELOAD_MAX_WAIT_MS, DEFAULT_RELOAD_RECHECK_MS } from '../defaults.js';
export { DEFAULT_RELOAD_DEBOUNCE_MS, DEFAULT_RELOAD_MAX_WAIT_MS, DEFAULT_RELOAD_RECHECK_MS };

/** Longest symlink chain followed when looking for directories to watch. */
const MAX_SYMLINK_HOPS = 16;

export interface FileWatcherOptions {
  clock: Clock;
  logger: Logger;
  debounceMs: number;
  maxWaitMs: number;
  /** 0: no periodic re-check. */
  recheckIntervalMs: number;
  /** Runs after a (debounced) event or on the re-check timer; never two at once. Must not throw. */
  check: () => Promise<void>;
}

export class FileWatcher extends Closable {
  readonly #paths: readonly string[];
  readonly #opts: FileWatcherOptions;
  readonly #watchers = new Map<string, FSWatcher>();
  #debounce: TimerHandle | undefined;
  #burstStartedAt: number | undefined;
  #recheck: TimerHandle | undefined;
  #running: Promise<void> | undefined;
  #again = false;

  constructor(paths: readonly string[], options: FileWatcherOptions) {
    super('FileWatcher');
    this.#paths = paths.map((p) => resolve(p));
    this.#opts = options;
  }

  /** Starts watching (directories resolved now, and again after every check). */
  async start(): Promise<void> {
    await this.#refreshDirectories();
    this.#scheduleRecheck();
  }

  /** Directories currently watched (for tests and diagnostics). */
  get directories(): string[] {
    return [...this.#watchers.keys()];
  }

  /** Runs the check now (or right after the one in progress); resolves when it has run. */
  trigger(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.#cancelDebounce();
    if (this.#running) {
      this.#again = true;
      return this.#running;
    }
    this.#running = this.track(this.#runLoop());
    return this.#running;
  }

  /** Waits for a check in progress, then stops the watches and timers. */
  protected onClose(): void {
    this.#cancelDebounce();
    this.#recheck?.cancel();
    this.#recheck = undefined;
    for (const watcher of this.#watchers.values()) watcher.close();
    this.#watchers.clear();
  }

  async #runLoop(): Promise<void> {
    try {
      do {
        this.#again = false;
        await this.#opts.check();
        if (this.closed) return;
        // A swapped symlink may now point into another directory.
        await this.#refreshDirectories();
      } while (this.#again && !this.closed);
    } catch (error) {
      // check() reports its own failures; this is a bug guard, so a timer's promise never rejects unhandled.
      this.#opts.logger.error({ paths: this.#paths, err: error }, 'file watch check failed');
    } finally {
      this.#running = undefined;
    }
  }

  #onEvent(): void {
    if (this.closed) return;
    const now = this.#opts.clock.now();
    this.#burstStartedAt ??= now;
    this.#debounce?.cancel();
    const wait = Math.max(0, Math.min(this.#opts.debounceMs, this.#burstStartedAt + this.#opts.maxWaitMs - now));
    this.#debounce = this.#opts.clock.setTimer(() => {
      this.#debounce = undefined;
      this.#burstStartedAt = undefined;
      void this.trigger();
    }, wait);
  }

  #cancelDebounce(): void {
    this.#debounce?.cancel();
    this.#debounce = undefined;
    this.#burstStartedAt = undefined;
  }

  #scheduleRecheck(): void {
    if (this.closed || this.#opts.recheckIntervalMs === 0) return;
    this.#recheck = this.#opts.clock.setTimer(() => {
      this.#recheck = undefined;
      void this.trigger().finally(() => this.#scheduleRecheck());
    }, this.#opts.recheckIntervalMs);
  }

  async #refreshDirectories(): Promise<void> {
    const wanted = new Set<string>();
    for (const path of this.#paths) for (const dir of await directoriesOf(path)) wanted.add(dir);
    if (this.closed) return;
    for (const [dir, watcher] of this.#watchers) {
      if (!wanted.has(dir)) {
        watcher.close();
        this.#watchers.delete(dir);
      }
    }
    for (const dir of wanted) {
      if (this.#watchers.has(dir)) continue;
      try {
        // persistent: false so a watcher never keeps the process alive.
        const watcher = fs.watch(dir, { persistent: false }, () => this.#onEvent());
        watcher.on('error', (error) => {
          // The directory went away (an old Kubernetes ..timestamp dir): forget it, the next check re-resolves.
          this.#opts.logger.debug({ dir, err: error }, 'directory watch ended');
          watcher.close();
          if (this.#watchers.get(dir) === watcher) this.#watchers.delete(dir);
          this.#onEvent();
        });
        this.#watchers.set(dir, watcher);
      } catch (error) {
        this.#opts.logger.warn({ dir, err: error }, 'cannot watch directory; relying on the periodic re-check');
      }
    }
  }
}

/** The file's directory, the directory of every symlink hop, and the directory of the final target. */
async function directoriesOf(path: string): Promise<string[]> {
  const dirs = [dirname(path)];
  let current = path;
  for (let hop = 0; hop < MAX_SYMLINK_HOPS; hop++) {
    let isLink: boolean;
    try {
      isLink = (await lstat(current)).isSymbolicLink();
    } catch {
      break;
    }
    if (!isLink) break;
    try {
      current = resolve(dirname(current), await readlink(current));
    } catch {
      break;
    }
    dirs.push(dirname(current));
  }
  try {
    dirs.push(dirname(await realpath(path)));
  } catch {
    // missing or dangling right now; the parent directory watch sees it come back
  }
  const unique: string[] = [];
  for (const dir of dirs) {
    let real = dir;
    try {
      // Watch each directory once even when reached through a symlinked path (/etc/tls/..data -> ..2026_01_01).
      real = await realpath(dir);
    } catch {
      continue;
    }
    if (!unique.includes(real)) unique.push(real);
  }
  return unique;
}

/** Watch tuning shared by certificate files and client-CA bundles. */
export interface WatchTuning {
  /** Quiet time after the last event before the files are read; default DEFAULT_RELOAD_DEBOUNCE_MS. */
  debounceMs?: number;
  /** A burst of events delays the check at most this long; default DEFAULT_RELOAD_MAX_WAIT_MS. */
  maxWaitMs?: number;
  /** Periodic re-check in case an event was missed; default DEFAULT_RELOAD_RECHECK_MS; 0 disables. */
  recheckIntervalMs?: number;
}

export function resolveWatchTuning(options: WatchTuning, prefix: string): Required<WatchTuning> {
  const ms = (key: keyof WatchTuning, fallback: number): number => durationMs(options[key], `${prefix}${key}`, true, true) ?? fallback;
  return Object.freeze({
    debounceMs: ms('debounceMs', DEFAULT_RELOAD_DEBOUNCE_MS),
    maxWaitMs: ms('maxWaitMs', DEFAULT_RELOAD_MAX_WAIT_MS),
    recheckIntervalMs: ms('recheckIntervalMs', DEFAULT_RELOAD_RECHECK_MS),
  });
}
