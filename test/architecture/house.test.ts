/**
 * Keeps the house: the import rules of .dependency-cruiser.cjs (ARCHITECTURE.md
 * explains them), files a reader can take in, and acme-client in acme/ only.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { createRequire } from 'node:module';
import { describe, test } from 'node:test';
import { cruise, type ICruiseResult, type IViolation } from 'dependency-cruiser';

const root = join(import.meta.dirname, '..', '..');
const MAX_LINES = 400;
const SOURCE_ROOTS = ['src', ...readdirSync(join(root, 'storage-adapters')).map((name) => `storage-adapters/${name}/src`)];

function sourceFiles(dir: string, out: string[] = []): string[] {
  for (const entry of readdirSync(join(root, dir), { withFileTypes: true })) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory()) sourceFiles(path, out);
    else if (entry.name.endsWith('.ts')) out.push(path);
  }
  return out;
}

function describeViolation(violation: IViolation): string {
  const via = violation.cycle?.length ? ` (cycle: ${violation.from} -> ${violation.cycle.map((step) => step.name).join(' -> ')})` : '';
  return `${violation.rule.name}: ${violation.from} imports ${violation.to}${via}`;
}

describe('the house', () => {
  test('imports follow the rules of .dependency-cruiser.cjs: no cycle, layers import downwards only', async () => {
    const require = createRequire(import.meta.url);
    const ruleSet = require(join(root, '.dependency-cruiser.cjs')) as { forbidden: unknown[]; options: Record<string, unknown> };
    const previous = process.cwd();
    process.chdir(root);
    let result: ICruiseResult;
    try {
      const reporting = await cruise(SOURCE_ROOTS, {
        ...ruleSet.options,
        validate: true,
        ruleSet: { forbidden: ruleSet.forbidden } as never,
        tsConfig: { fileName: 'tsconfig.json' },
      } as never);
      result = reporting.output as ICruiseResult;
    } finally {
      process.chdir(previous);
    }
    assert.ok(result.summary.totalCruised > 100, `only ${result.summary.totalCruised} modules were read: the check is not looking at the sources`);
    const violations = result.summary.violations.filter((violation) => violation.rule.severity === 'error');
    assert.deepEqual(violations.map(describeViolation), [], 'import rules broken (see ARCHITECTURE.md):');
  });

  test(`no source file is longer than ${MAX_LINES} lines`, () => {
    const long = SOURCE_ROOTS.flatMap((dir) => sourceFiles(dir))
      .map((file) => ({ file, lines: readFileSync(join(root, file), 'utf8').split('\n').length - 1 }))
      .filter(({ lines }) => lines > MAX_LINES)
      .map(({ file, lines }) => `${file}: ${lines} lines`);
    assert.deepEqual(long, []);
  });

  test('acme-client is loaded only under src/acme/ (static, type-only and lazy imports alike)', () => {
    const outside = sourceFiles('src')
      .filter((file) => !file.startsWith('src/acme/'))
      .filter((file) => /['"]acme-client['"]/.test(readFileSync(join(root, file), 'utf8')))
      .map((file) => relative(root, join(root, file)));
    assert.deepEqual(outside, []);
  });
});
