/**
 * Whether dist/ holds a build of the current src/ (`npm test` builds first). Tests that start many
 * keeper processes run them from dist/ when it is fresh: plain node loads the compiled package in about
 * a quarter of the CPU tsx needs to load src/, which decides whether a loop of process starts fits its
 * time limit on a loaded machine. After an edit without a build they fall back to src/ through tsx.
 */
import { readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

function newestMtimeMs(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtimeMs(path) : statSync(path).mtimeMs);
  }
  return newest;
}

export function builtDistIsFresh(): boolean {
  try {
    return statSync(join(REPO_ROOT, 'dist', '.tsbuildinfo')).mtimeMs >= newestMtimeMs(join(REPO_ROOT, 'src'));
  } catch {
    return false;
  }
}

/** How to run a .mjs fixture that imports the library from `CERTKEEPER_LIBRARY_BASE`: node arguments and that base URL. */
export function libraryRunner(): { execArgv: string[]; libraryBase: string } {
  return builtDistIsFresh()
    ? { execArgv: [], libraryBase: pathToFileURL(join(REPO_ROOT, 'dist')).href + '/' }
    : { execArgv: ['--import', 'tsx'], libraryBase: pathToFileURL(join(REPO_ROOT, 'src')).href + '/' };
}
