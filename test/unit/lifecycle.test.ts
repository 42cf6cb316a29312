import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isCertKeeperError } from '../../src/errors.js';
import { Closable, Lifecycle } from '../../src/lifecycle.js';

describe('Lifecycle', () => {
  test('close() is idempotent: one release, the same promise every time', async () => {
    let releases = 0;
    const lifecycle = new Lifecycle('part', () => {
      releases++;
    });
    const first = lifecycle.close();
    assert.equal(lifecycle.close(), first);
    await first;
    await lifecycle.close();
    assert.equal(releases, 1);
    assert.equal(lifecycle.closed, true);
  });

  test('aborts its signal with ERR_CLOSED, waits for tracked work (and work it starts), then releases', async () => {
    const order: string[] = [];
    const lifecycle = new Lifecycle('part', () => {
      order.push('release');
    });
    let finishFirst!: () => void;
    const first = lifecycle.track(new Promise<void>((resolve) => (finishFirst = resolve)));
    first.then(() => {
      order.push('first done');
      // Work that settles during close may start a last piece of cleanup; close waits for it too.
      void lifecycle.track(new Promise<void>((resolve) => setImmediate(resolve))).then(() => order.push('cleanup done'));
    });
    const closing = lifecycle.close();
    assert.equal(lifecycle.signal.aborted, true);
    assert.ok(isCertKeeperError(lifecycle.signal.reason));
    assert.equal((lifecycle.signal.reason as { code: string }).code, 'ERR_CLOSED');
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(order, [], 'release must wait for tracked work');
    finishFirst();
    await closing;
    assert.deepEqual(order, ['first done', 'cleanup done', 'release']);
  });

  test('a rejected tracked promise does not fail close() and stays the caller’s to handle', async () => {
    const lifecycle = new Lifecycle('part');
    const failing = lifecycle.track(Promise.reject(new Error('boom')));
    await assert.rejects(failing, /boom/);
    await lifecycle.close();
  });

  test('assertOpen throws ClosedError naming the part once closing started', async () => {
    const lifecycle = new Lifecycle('the cache');
    lifecycle.assertOpen();
    void lifecycle.close();
    assert.throws(() => lifecycle.assertOpen(), (error: Error & { code?: string }) => error.code === 'ERR_CLOSED' && /the cache is closed/.test(error.message));
  });
});

describe('Closable', () => {
  class Part extends Closable {
    released = 0;
    constructor() {
      super('part');
    }
    protected onClose(): void {
      this.released++;
    }
    run(): Promise<void> {
      this.assertOpen();
      return this.track(new Promise((resolve) => setImmediate(resolve)));
    }
  }

  test('await using closes the part once, after its work', async () => {
    let part: Part;
    {
      await using scoped = new Part();
      part = scoped;
      void scoped.run();
    }
    assert.equal(part.released, 1);
    await part.close();
    assert.equal(part.released, 1);
    await assert.rejects(async () => part.run(), (error: Error & { code?: string }) => error.code === 'ERR_CLOSED');
  });
});
