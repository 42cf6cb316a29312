/**
 * The folder index of RedisStorage on a store written before it existed (an upgrade): the first listFolders
 * builds it from the key index, once, and from then on writes and deletes keep it up to date.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { RedisStorage } from '@certkeeper/storage-redis';
import { REDIS_URL, deleteByPrefix, redisSkipReason } from './server.js';

const skip = await redisSkipReason();
const prefix = `certkeeper-test:${randomUUID()}:folders:`;

describe('RedisStorage folder index', { skip }, () => {
  after(async () => {
    const admin = new Redis(REDIS_URL);
    await deleteByPrefix(admin, prefix);
    await admin.quit();
  });

  it('is built once from the key index of a store that has none, then kept up to date', async () => {
    const writer = new RedisStorage({ url: REDIS_URL, prefix });
    const names = Array.from({ length: 1500 }, (_, i) => `n${String(i).padStart(4, '0')}.test`);
    for (let i = 0; i < names.length; i += 100) {
      await Promise.all(names.slice(i, i + 100).flatMap((name) => ['crt', 'json'].map((ext) => writer.store(`certificates/ca/${name}/${name}.${ext}`, Buffer.from(ext)))));
    }
    await writer.store('certificates/ca/plain-value', Buffer.from('x'));
    await writer.close();
    // What a version without the folder index leaves behind: the keys and their index, nothing else.
    const admin = new Redis(REDIS_URL);
    await admin.del(`${prefix}folders`, `${prefix}folders:ready`);

    const reader = new RedisStorage({ url: REDIS_URL, prefix });
    try {
      assert.deepEqual(await reader.listFolders('certificates/ca'), names);
      assert.equal(await admin.get(`${prefix}folders:ready`), '1');
      assert.deepEqual(await reader.listFolders('certificates'), ['ca']);
      assert.deepEqual(await reader.listFolders(''), ['certificates']);
      await reader.delete(`certificates/ca/${names[0]}`);
      await reader.delete(`certificates/ca/${names[1]}/${names[1]}.crt`);
      await reader.delete(`certificates/ca/${names[1]}/${names[1]}.json`);
      await reader.store('certificates/other/a/b', Buffer.from('b'));
      assert.deepEqual(await reader.listFolders('certificates/ca'), names.slice(2));
      assert.deepEqual(await reader.listFolders('certificates'), ['ca', 'other']);
      await reader.delete('certificates/other/a/b');
      assert.deepEqual(await reader.listFolders('certificates'), ['ca']);
    } finally {
      await reader.close();
      await admin.quit();
    }
  });
});
