/**
 * One-level listing in pages (connection.ts listOneLevel): the children of a folder larger than a page
 * are all found, each query reads at most LIST_PAGE_SIZE keys, and a sub-folder's remaining keys are
 * skipped. Driven by an in-memory stand-in for the range query (bytewise order, as the "C" collation).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LIST_PAGE_SIZE, listFolderNames, listOneLevel } from '../src/connection.js';

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

/** The folder-listing query of listFolderNames, answered from memory: count, last key, new folder names. */
function fakeFolderTable(keys: string[]): { query: (text: string, values: unknown[]) => Promise<{ rows: { n: number; last: string | null; folders: string | null }[] }>; queries: number } {
  const cmp = (a: string, b: string): number => Buffer.compare(Buffer.from(a), Buffer.from(b));
  const sorted = [...keys].sort(cmp);
  const state = { queries: 0, query: async (text: string, values: unknown[]) => {
    state.queries++;
    const [from, limit, offset, upper] = values as [string, number, number, string | undefined];
    const inclusive = text.includes('key >= $1');
    const page = sorted.filter((k) => (inclusive ? cmp(k, from) >= 0 : cmp(k, from) > 0) && (upper === undefined || cmp(k, upper) < 0)).slice(0, limit);
    const names: string[] = [];
    let previous: string | undefined;
    for (const key of page) {
      const rest = [...key].slice(offset - 1).join('');
      const slash = rest.indexOf('/');
      const folder = slash === -1 ? undefined : rest.slice(0, slash);
      if (folder !== undefined && folder !== previous) names.push(folder);
      previous = folder;
    }
    return { rows: [{ n: page.length, last: page[page.length - 1] ?? null, folders: names.length > 0 ? names.join('\n') : null }] };
  } };
  return state;
}

test('lists folder names in pages and in chunks cut at any split keys, each folder once', async () => {
  const folders = Math.ceil(LIST_PAGE_SIZE * 0.9);
  const keys: string[] = [];
  const names: string[] = [];
  for (let i = 0; i < folders; i++) {
    const name = `n${i}.test`;
    names.push(name);
    for (const part of ['crt', 'json', 'key']) keys.push(`certificates/ca/${name}/${name}.${part}`);
  }
  keys.push('certificates/ca/terminal-value', 'certificates/ca-other/x/y', 'certificates/ca0', 'certificates/ca/ü/x');
  const expected = [...names, 'ü'].sort();
  // Splits: inside folders, outside the prefix, non-ASCII (ignored), a plain value, duplicates.
  const splits = ['certificates/ca/n5.test/n5.test.json', 'certificates/ca/n123.test', 'certificates/ca/n123.test/x', 'certificates/c', 'certificates/ca0/z', 'certificates/ca/ü', 'certificates/ca/terminal-value', 'zzz'];
  for (const parallel of [1, 3]) {
    const table = fakeFolderTable(keys);
    const found = await listFolderNames(table.query, 't', 'certificates/ca', splits, parallel);
    assert.deepEqual([...found].sort(), expected);
    assert.equal(new Set(found).size, found.length);
  }
  const plain = fakeFolderTable(keys);
  assert.deepEqual([...(await listFolderNames(plain.query, 't', 'certificates/ca'))].sort(), expected);
  assert.ok(plain.queries > 1, 'more than one page was read');
  assert.deepEqual(await listFolderNames(fakeFolderTable(keys).query, 't', ''), ['certificates']);
});
