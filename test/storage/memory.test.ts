import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FakeClock } from '../../src/testing/fake-clock.js';
import { runStorageConformance } from '../../src/testing/index.js';
import { MemoryBackend, MemoryStorage } from '../../src/storage/memory.js';

const LOCK_TTL_MS = 300;
const backend = new MemoryBackend();

runStorageConformance({
  name: 'memory',
  createStorage: async () => new MemoryStorage({ backend, lockTtlMs: LOCK_TTL_MS }),
  staleLockMs: LOCK_TTL_MS,
  abandonLock: async (storage, name) => (storage as MemoryStorage).abandonLock(name),
});

describe('MemoryStorage', () => {
  it('keeps instances on different backends apart', async () => {
    const a = new MemoryStorage();
    const b = new MemoryStorage();
    await a.store('k', Buffer.from('a'));
    assert.equal(await b.exists('k'), false);
    assert.equal(await a.tryLock('l'), true);
    assert.equal(await b.tryLock('l'), true);
  });

  it('grants a contended lock to waiters in arrival order', async () => {
    const shared = new MemoryBackend();
    const holders = [0, 1, 2, 3].map(() => new MemoryStorage({ backend: shared }));
    const order: number[] = [];
    await holders[0]!.lock('l');
    const waits = [1, 2, 3].map((i) =>
      holders[i]!.lock('l').then(async () => {
        order.push(i);
        await holders[i]!.unlock('l');
      }),
    );
    await holders[0]!.unlock('l');
    await Promise.all(waits);
    assert.deepEqual(order, [1, 2, 3]);
  });

  it('keeps a held lock alive by refreshing it, and lets it expire once abandoned (fake clock)', async () => {
    const clock = new FakeClock();
    const shared = new MemoryBackend();
    const a = new MemoryStorage({ backend: shared, lockTtlMs: 1_000, clock });
    const b = new MemoryStorage({ backend: shared, lockTtlMs: 1_000, clock });
    await a.lock('l');
    await clock.advance(10_000);
    assert.equal(await b.tryLock('l'), false, 'a refreshes its lease while it lives');
    await a.assertLockHeld('l');
    a.abandonLock('l');
    await clock.advance(999);
    assert.equal(await b.tryLock('l'), false);
    let bHolds = false;
    const waiting = b.lock('l').then(() => {
      bHolds = true;
    });
    await clock.advance(1_000);
    await waiting;
    assert.equal(bHolds, true);
    await assert.rejects(a.assertLockHeld('l'), { code: 'ERR_LOCK_LOST' });
    await b.close();
    await a.close();
  });

  it('rejects pending lock waits and refuses use after close', async () => {
    const shared = new MemoryBackend();
    const a = new MemoryStorage({ backend: shared });
    const b = new MemoryStorage({ backend: shared });
    await a.lock('l');
    const waiting = b.lock('l');
    await b.close();
    await assert.rejects(waiting, { code: 'ERR_ABORTED' });
    await assert.rejects(b.load('k'), { code: 'ERR_CLOSED' });
    await a.unlock('l');
    assert.equal(await a.tryLock('l'), true, 'the cancelled waiter was removed from the queue');
  });

  it('validates its options', () => {
    assert.throws(() => new MemoryStorage({ lockTtlMs: 0 }), { code: 'ERR_INVALID_OPTION' });
    assert.throws(() => new MemoryStorage({ backend: {} as MemoryBackend }), { code: 'ERR_INVALID_OPTION' });
  });
});
