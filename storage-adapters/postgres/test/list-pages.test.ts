/**
 * One-level listing in pages (connection.ts listOneLevel): the children of a folder larger than a page
 * are all found, each query reads at most LIST_PAGE_SIZE keys, and a sub-folder's remaining keys are
 * skipped. Driven by an in-memory stand-in for the range query (bytewise order, as the "C" collation).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LIST_PAGE_SIZE, listOneLevel } from '../src/connection.js';

function fakeTable(keys: string[]): { query: (text: string, values: unknown[]) => Promise<{ rows: { key: string }[] }>; queries: number } {
  const sorted = [...keys].sort((a, b) => (Buffer.compare(Buffer.from(a), Buffer.from(b))));
  const state = { queries: 0, query: async (text: string, values: unknown[]) => {
    state.queries++;
    const [from, limit, upper] = values as [string, number, string | undefined];
    const inclusive = text.includes('key >= $1');
    const cmp = (a: string, b: string): number => Buffer.compare(Buffer.from(a), Buffer.from(b));
    const rows = sorted.filter((k) => (inclusive ? cmp(k, from) >= 0 : cmp(k, from) > 0) && (upper === undefined || cmp(k, upper) < 0)).slice(0, limit);
    return { rows: rows.map((key) => ({ key })) };
  } };
  return state;
}

test('lists every child of a folder bigger than a page, a page per query, skipping sub-folders', async () => {
  const folders = Math.ceil(LIST_PAGE_SIZE * 1.7);
  const keys: string[] = [];
  for (let i = 0; i < folders; i++) {
    const name = `n${i}.test`;
    for (const part of ['crt', 'json', 'key']) keys.push(`certificates/ca/${name}/${name}.${part}`);
  }
  keys.push('certificates/ca/terminal-value', 'certificates/ca-other/x/y', 'certificates/c', 'certificates/ca0');
  const table = fakeTable(keys);
  const found = new Set<string>();
  await listOneLevel(table.query, 't', 'certificates/ca', found);
  const expected = new Set([...Array.from({ length: folders }, (_, i) => `certificates/ca/n${i}.test`), 'certificates/ca/terminal-value']);
  assert.deepEqual([...found].sort(), [...expected].sort());
  // 3 keys a folder: a page covers about LIST_PAGE_SIZE / 3 folders.
  assert.ok(table.queries <= Math.ceil((folders * 3) / LIST_PAGE_SIZE) + 2, `${table.queries} queries`);
  assert.ok(table.queries > 1, 'more than one page was read');

  const top = new Set<string>();
  await listOneLevel(fakeTable(keys).query, 't', '', top);
  assert.deepEqual([...top], ['certificates']);
});
