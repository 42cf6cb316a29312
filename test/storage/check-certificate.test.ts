/**
 * checkCertificateWritable: the probe written at a certificate's own path
 * before ordering (issue 14, defect 6), against FileStorage and MemoryStorage.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { StorageError } from '../../src/errors.js';
import { checkCertificateWritable } from '../../src/storage/check.js';
import { FileStorage } from '../../src/storage/file.js';
import { certificateKeys } from '../../src/storage/layout.js';
import { MemoryStorage } from '../../src/storage/memory.js';

describe('checkCertificateWritable', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'certkeeper-check-certificate-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('a file where the certificate folder should be: ERR_STORAGE naming the path, and the file is left alone', async () => {
    const root = join(dir, 'planted');
    const keys = certificateKeys('issuer', 'planted.example.test');
    await mkdir(join(root, 'certificates', 'issuer'), { recursive: true });
    await writeFile(join(root, keys.prefix), 'in the way');
    const storage = new FileStorage({ root });
    try {
      const error = await checkCertificateWritable(storage, keys).then(() => assert.fail('should fail'), (e: unknown) => e);
      assert.ok(error instanceof StorageError, String(error));
      assert.equal(error.code, 'ERR_STORAGE');
      assert.match(error.message, /planted\.example\.test\.probe.*ENOTDIR/);
      assert.equal(await readFile(join(root, keys.prefix), 'utf8'), 'in the way');
    } finally {
      await storage.close();
    }
  });

  it('a new name: the folder it creates for the probe is removed again (no empty "stored" folder)', async () => {
    const root = join(dir, 'fresh');
    const keys = certificateKeys('issuer', 'fresh.example.test');
    const storage = new FileStorage({ root });
    try {
      await checkCertificateWritable(storage, keys);
      await assert.rejects(stat(join(root, keys.prefix)), { code: 'ENOENT' });
    } finally {
      await storage.close();
    }
  });

  it('a stored set: only the probe is deleted', async () => {
    const storage = new MemoryStorage();
    const keys = certificateKeys('issuer', 'stored.example.test');
    await storage.store(keys.cert, Buffer.from('chain'));
    await storage.store(keys.meta, Buffer.from('{}'));
    await checkCertificateWritable(storage, keys);
    assert.deepEqual(await storage.list(keys.prefix, false), [keys.cert, keys.meta].sort());
  });

  it('a value that does not read back is an error', async () => {
    const inner = new MemoryStorage();
    const keys = certificateKeys('issuer', 'flaky.example.test');
    const storage = new Proxy(inner, {
      get(target, property) {
        if (property === 'load') return async () => Buffer.from('something else');
        const value = Reflect.get(target, property, target) as unknown;
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
    await assert.rejects(checkCertificateWritable(storage, keys), /differs from the value written/);
    await assert.rejects(inner.load(keys.probe), { code: 'ERR_STORAGE_NOT_FOUND' }, 'the probe is cleaned up');
  });
});
