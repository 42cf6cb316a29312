/**
 * Conformance cases for folder listing (FolderLister): run for every storage
 * that has it, skipped for one that has not. What listFolders returns must
 * always agree with list(prefix, false) minus its plain keys, across
 * instances, after deletes, and across an adapter's listing pages.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildCertificateMeta, deleteCertificateSet, saveCertificateSet } from '../storage/certificates.js';
import { certificatesPrefix, safeKeyComponent } from '../storage/layout.js';
import { hasFolderListing, type Storage } from '../storage/types.js';
import { selfSignedPair } from './conformance-helpers.js';

export interface FolderContext {
  open: () => Promise<Storage>;
  root: string;
  issuerKey: string;
}

export function folderCases(ctx: FolderContext): void {
  const { open, root, issuerKey } = ctx;
  const bytes = (text: string): Buffer => Buffer.from(text, 'utf8');

  describe('folder listing', () => {
    it('lists the names of the folders directly under a prefix, as another instance stored them', async (t) => {
      const a = await open();
      const b = await open();
      if (!hasFolderListing(b)) return t.skip('optional capability listFolders not implemented by this backend');
      const p = `${root}/folders/basic`;
      // `h` is a value and a folder at once; `a` and `k` are values only; `e` holds a folder only.
      for (const key of ['a', 'b/c', 'b/d', 'e/f/g', 'h', 'h/i', 'k', 'b-x/y']) await a.store(`${p}/${key}`, bytes(key));
      assert.deepEqual((await b.listFolders(p)).sort(), ['b', 'b-x', 'e', 'h']);
      assert.deepEqual((await b.listFolders(`${p}/e`)).sort(), ['f']);
      assert.deepEqual(await b.listFolders(`${p}/b`), []);
      assert.deepEqual(await b.listFolders(`${p}/missing`), []);
      const oneLevel = (await b.list(p, false)).map((key) => key.slice(p.length + 1));
      for (const folder of await b.listFolders(p)) assert.ok(oneLevel.includes(folder), folder);
    });

    it('follows deletes of a folder and of the last key in it', async (t) => {
      const s = await open();
      if (!hasFolderListing(s)) return t.skip('optional capability listFolders not implemented by this backend');
      const p = `${root}/folders/deletes`;
      for (const key of ['b/c', 'b/d', 'e/f/g', 'h', 'h/i', 'm/n']) await s.store(`${p}/${key}`, bytes(key));
      await s.delete(`${p}/b`);
      assert.deepEqual((await s.listFolders(p)).sort(), ['e', 'h', 'm']);
      await s.delete(`${p}/h/i`);
      await s.delete(`${p}/e/f/g`);
      assert.deepEqual((await s.listFolders(p)).sort(), ['m']);
      await s.delete(`${p}/m/n`);
      assert.deepEqual(await s.listFolders(p), []);
    });

    it('lists many folders (beyond one listing page) exactly once each', { timeout: 120_000 }, async (t) => {
      const s = await open();
      if (!hasFolderListing(s)) return t.skip('optional capability listFolders not implemented by this backend');
      const p = `${root}/folders/many`;
      const count = 400;
      const expected: string[] = [];
      const writes: Promise<void>[] = [];
      for (let i = 0; i < count; i++) {
        const folder = `n${String(i).padStart(4, '0')}`;
        expected.push(folder);
        for (const file of ['x.crt', 'x.json', 'x.key']) writes.push(s.store(`${p}/${folder}/${file}`, bytes(file)));
        if (writes.length >= 60) await Promise.all(writes.splice(0));
      }
      await Promise.all(writes);
      const listed = await s.listFolders(p);
      assert.equal(listed.length, count);
      assert.deepEqual([...listed].sort(), expected);
    });

    it('lists stored certificate sets by their folder names', async (t) => {
      const s = await open();
      if (!hasFolderListing(s)) return t.skip('optional capability listFolders not implemented by this backend');
      const folderIssuer = `${issuerKey}-folders`;
      const names = ['folders-a.example.test', '*.folders.example.test'];
      for (const name of names) {
        const { certPem, keyPem } = await selfSignedPair([name]);
        await saveCertificateSet(s, { certPem, keyPem, meta: buildCertificateMeta({ certPem, keyPem, issuerKey: folderIssuer, names: [name] }) });
      }
      try {
        assert.deepEqual((await s.listFolders(certificatesPrefix(folderIssuer))).sort(), names.map(safeKeyComponent).sort());
      } finally {
        for (const name of names) await deleteCertificateSet(s, folderIssuer, name);
      }
      assert.deepEqual(await s.listFolders(certificatesPrefix(folderIssuer)), []);
    });
  });
}
