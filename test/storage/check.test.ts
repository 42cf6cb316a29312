import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { StorageError } from '../../src/errors.js';
import { STORAGE_CHECK_BYTES, STORAGE_CHECK_PREFIX, checkStorageWritable } from '../../src/storage/check.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import type { Storage } from '../../src/storage/types.js';

/** Wraps a storage, replacing some of its methods. */
function withOverrides(inner: Storage, overrides: Partial<Storage>): Storage {
  return new Proxy(inner, {
    get(target, prop, receiver) {
      if (prop in overrides) return overrides[prop as keyof Storage];
      const v = Reflect.get(target, prop, receiver) as unknown;
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
}

describe('checkStorageWritable', () => {
  it('writes, reads back and deletes a 10 KiB value under a unique key', async () => {
    const inner = new MemoryStorage();
    const written: { key: string; size: number }[] = [];
    const storage = withOverrides(inner, {
      store: async (key, value) => {
        written.push({ key, size: value.length });
        await inner.store(key, value);
      },
    });
    await checkStorageWritable(storage);
    await checkStorageWritable(storage);
    assert.equal(written.length, 2);
    assert.equal(written[0]?.size, STORAGE_CHECK_BYTES);
    assert.notEqual(written[0]?.key, written[1]?.key);
    assert.ok(written[0]?.key.startsWith(`${STORAGE_CHECK_PREFIX}/`));
    assert.equal(await inner.exists(written[0]!.key), false, 'the probe is deleted');
  });

  it('throws StorageError naming the failed step when the write fails', async () => {
    const storage = withOverrides(new MemoryStorage(), {
      store: async () => {
        throw new StorageError('Could not write "x" in /srv: EROFS');
      },
    });
    await assert.rejects(checkStorageWritable(storage), (err: Error & { code?: string }) => {
      assert.ok(err instanceof StorageError);
      assert.match(err.message, /cannot write to storage \(ERR_STORAGE\): Could not write "x" in \/srv: EROFS/);
      return true;
    });
  });

  it('throws StorageError when the value read back differs, and still deletes the probe', async () => {
    const inner = new MemoryStorage();
    const storage = withOverrides(inner, { load: async () => Buffer.from('something else') });
    await assert.rejects(checkStorageWritable(storage), { code: 'ERR_STORAGE', message: /differs from the value written/ });
    await assert.rejects(inner.list(STORAGE_CHECK_PREFIX, true), { code: 'ERR_STORAGE_NOT_FOUND' });
  });
});
