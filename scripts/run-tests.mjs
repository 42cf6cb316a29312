#!/usr/bin/env node
// Runs every test file with Node's built-in test runner (TypeScript through tsx).
// Usage: node scripts/run-tests.mjs [path-substring ...]
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const roots = ['test', ...listDirs('storage-adapters').map((d) => join('storage-adapters', d, 'test'))];
const filters = process.argv.slice(2);

function listDirs(dir) {
  try {
    return readdirSync(dir).filter((d) => statSync(join(dir, d)).isDirectory());
  } catch {
    return [];
  }
}

function findTests(dir, out = []) {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return out;
  }
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) findTests(path, out);
    else if (entry.name.endsWith('.test.ts')) out.push(path);
  }
  return out;
}

const files = roots.flatMap((r) => findTests(r)).sort().filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)));
if (files.length === 0) {
  console.error('no test files matched');
  process.exit(1);
}
const concurrency = process.env.CERTKEEPER_TEST_CONCURRENCY ?? '2';
const result = spawnSync(
  process.execPath,
  ['--import', 'tsx', '--test', `--test-concurrency=${concurrency}`, `--test-timeout=${process.env.CERTKEEPER_TEST_TIMEOUT_MS ?? '240000'}`, '--test-reporter=spec', ...files],
  { stdio: 'inherit', env: { ...process.env, CERTKEEPER_TEST: '1' } },
);
process.exit(result.status ?? 1);
