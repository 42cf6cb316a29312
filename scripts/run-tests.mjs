#!/usr/bin/env node
// Runs every test file with Node's built-in test runner (TypeScript through tsx).
// Usage: node scripts/run-tests.mjs [path-substring ...]
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
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
// A TAP copy of the results, read at the end: a suite skipped with describe(..., { skip }) counts as 0 tests
// in the spec reporter's totals, so skips are counted here, suites included, with what was missing.
const tapDir = mkdtempSync(join(tmpdir(), 'certkeeper-tests-'));
const tapFile = join(tapDir, 'results.tap');
const result = spawnSync(
  process.execPath,
  [
    '--import', 'tsx', '--test', `--test-concurrency=${concurrency}`, `--test-timeout=${process.env.CERTKEEPER_TEST_TIMEOUT_MS ?? '240000'}`,
    '--test-reporter=spec', '--test-reporter-destination=stdout', '--test-reporter=tap', `--test-reporter-destination=${tapFile}`,
    ...files,
  ],
  { stdio: 'inherit', env: { ...process.env, CERTKEEPER_TEST: '1' } },
);
try {
  console.log(summarize(readFileSync(tapFile, 'utf8')));
} catch (error) {
  console.error(`could not summarize the results: ${error}`);
} finally {
  rmSync(tapDir, { recursive: true, force: true });
}
process.exit(result.status ?? 1);

/** "N passed, N failed, N skipped (T tests and S whole suites ...) (missing: a, b; install: apt-get install -y ...)" from the TAP stream. */
function summarize(tap) {
  const field = (name) => Number(tap.match(new RegExp(`^# ${name} (\\d+)$`, 'm'))?.[1] ?? 0);
  // Each skip line, and whether its YAML block says it was a whole suite (whose tests never ran, so are not counted).
  const skipped = [...tap.matchAll(/^\s*ok \d+ - .*# SKIP(.*)\n((?:\s+.*\n)*?)\s*\.\.\.$/gm)].map((m) => ({ reason: m[1].trim(), suite: /type: 'suite'/.test(m[2]) }));
  const skips = skipped.map((s) => s.reason);
  const skippedSuites = skipped.filter((s) => s.suite).length;
  const missing = new Set();
  const packages = new Set();
  for (const reason of skips) {
    const m = reason.match(/^(.+?) not installed; run: apt-get install -y (.+)$/);
    if (!m) continue;
    for (const name of m[1].split(', ')) missing.add(name);
    for (const p of m[2].split(/\s+|&&/).filter((w) => w && w !== 'apt-get' && w !== 'install' && w !== '-y')) packages.add(p);
  }
  const failed = field('fail') + field('cancelled');
  const passed = field('pass');
  // Skips for another reason (an optional capability a backend lacks, say), counted by reason.
  const others = new Map();
  for (const reason of skips) if (!/ not installed; run: /.test(reason)) others.set(reason || 'no reason given', (others.get(reason || 'no reason given') ?? 0) + 1);
  const otherDetail = others.size > 0 ? ` (${[...others].map(([reason, n]) => `${n} × ${reason}`).join('; ')})` : '';
  const detail = (missing.size > 0 ? ` (missing: ${[...missing].join(', ')}; install: apt-get install -y ${[...packages].join(' ')})` : '') + otherDetail;
  const what = skippedSuites > 0 ? ` (${skips.length - skippedSuites} tests and ${skippedSuites} whole suites, whose tests did not run)` : '';
  return `${passed} passed, ${failed} failed, ${skips.length} skipped${what}${detail}`;
}
