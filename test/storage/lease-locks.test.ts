import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ClosedError, InvalidOptionError, LockLostError, StorageError } from '../../src/errors.js';
import { LeaseLocks, resolveLeaseLockOptions, type LeaseBackend } from '../../src/storage/lease-locks.js';

/** An in-process lease table whose behaviour each test can bend (lose a lease, fail, delay). */
class FakeLeases implements LeaseBackend {
  readonly tokens = new Map<string, string>();
  refreshes = 0;
  failRefresh = false;
  releases: string[] = [];
  /** When set, acquire waits for this before answering. */
  acquireGate: Promise<void> | undefined;

  async acquire(name: string, token: string): Promise<boolean> {
    await this.acquireGate;
    if (this.tokens.has(name)) return false;
    this.tokens.set(name, token);
    return true;
  }
  async refresh(name: string, token: string): Promise<boolean> {
    this.refreshes++;
    if (this.failRefresh) throw new StorageError('connection reset');
    return this.tokens.get(name) === token;
  }
  async release(name: string, token: string): Promise<void> {
    this.releases.push(name);
    if (this.tokens.get(name) === token) this.tokens.delete(name);
  }
  async isHeld(name: string, token: string): Promise<boolean> {
    return this.tokens.get(name) === token;
  }
}

const fast = resolveLeaseLockOptions({ lockTtlMs: 1_000, lockRefreshMs: 10, lockPollMs: 5 });

async function until(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !condition(); i++) await new Promise((r) => setTimeout(r, 5));
  assert.ok(condition(), 'condition never became true');
}

describe('LeaseLocks', () => {
  it('resolves defaults and rejects bad timings, naming the option', () => {
    assert.deepEqual({ ...resolveLeaseLockOptions({}) }, { lockTtlMs: 10_000, lockRefreshMs: 10_000 / 3, lockPollMs: 500 });
    assert.equal(resolveLeaseLockOptions({ lockTtlMs: 100 }).lockPollMs, 100);
    assert.ok(Object.isFrozen(resolveLeaseLockOptions({})));
    for (const [options, option] of [
      [{ lockTtlMs: 0 }, 'lockTtlMs'],
      [{ lockTtlMs: Number.NaN }, 'lockTtlMs'],
      [{ lockRefreshMs: -5 }, 'lockRefreshMs'],
      [{ lockTtlMs: 100, lockRefreshMs: 200 }, 'lockRefreshMs'],
      [{ lockPollMs: '5' }, 'lockPollMs'],
    ] as const) {
      assert.throws(
        () => resolveLeaseLockOptions(options as never),
        (e: unknown) => e instanceof InvalidOptionError && e.option === option,
      );
    }
  });

  it('marks a lease lost when a refresh finds another holder, without asking the server again', async () => {
    const backend = new FakeLeases();
    const locks = new LeaseLocks(backend, fast, 'Test');
    await locks.lock('a');
    backend.tokens.set('a', 'someone-else');
    await until(() => backend.refreshes > 0);
    // Even if the old token came back, a lease found lost stays lost.
    await assert.rejects(locks.assertLockHeld('a'), LockLostError);
    await locks.close();
  });

  it('keeps refreshing after a transient refresh error', async () => {
    const backend = new FakeLeases();
    const locks = new LeaseLocks(backend, fast, 'Test');
    await locks.lock('a');
    backend.failRefresh = true;
    await until(() => backend.refreshes >= 2);
    backend.failRefresh = false;
    const seen = backend.refreshes;
    await until(() => backend.refreshes > seen + 1);
    await locks.assertLockHeld('a');
    await locks.close();
  });

  it('stops refreshing an abandoned lease and after unlock', async () => {
    const backend = new FakeLeases();
    const locks = new LeaseLocks(backend, fast, 'Test');
    await locks.lock('a');
    await until(() => backend.refreshes > 0);
    locks.abandon('a');
    const afterAbandon = backend.refreshes;
    await new Promise((r) => setTimeout(r, 50));
    assert.ok(backend.refreshes <= afterAbandon + 1, 'at most a refresh already in flight');
    await locks.assertLockHeld('a'); // abandoned, not released: still held until it expires
    await locks.unlock('a');
    assert.deepEqual(backend.releases, ['a']);
    await assert.rejects(locks.assertLockHeld('a'), LockLostError);
  });

  it('close() cancels waits, releases held locks, refuses new calls, and is idempotent', async () => {
    const backend = new FakeLeases();
    const locks = new LeaseLocks(backend, fast, 'Test');
    await locks.lock('held');
    backend.tokens.set('busy', 'other');
    const waiting = locks.lock('busy');
    await locks.close();
    await locks.close();
    await assert.rejects(waiting, { code: 'ERR_ABORTED' });
    assert.equal(backend.tokens.has('held'), false);
    await assert.rejects(locks.lock('x'), ClosedError);
    await assert.rejects(locks.tryLock('x'), ClosedError);
  });

  it('gives back a lock acquired while close() was running', async () => {
    const backend = new FakeLeases();
    let open!: () => void;
    backend.acquireGate = new Promise((r) => {
      open = r;
    });
    const locks = new LeaseLocks(backend, fast, 'Test');
    const taking = locks.tryLock('late');
    await locks.close();
    open();
    await assert.rejects(taking, ClosedError);
    assert.equal(backend.tokens.has('late'), false);
  });

  it('validates lock names', async () => {
    const locks = new LeaseLocks(new FakeLeases(), fast, 'Test');
    await assert.rejects(locks.lock('a/b'), { code: 'ERR_INVALID_STORAGE_KEY' });
    await assert.rejects(locks.tryLock('..'), { code: 'ERR_INVALID_STORAGE_KEY' });
    await locks.close();
  });
});
