/**
 * A load shared by several handshakes is abandoned only when every one of them has gone away, and an
 * abandoned load's empty answer is not remembered as "no certificate" (the next handshake asks again).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ContextCache, type LoaderOptions } from '../../src/tls/context-cache.js';
import type { CertificateMaterial } from '../../src/tls/certificate-material.js';

/** A loader whose calls wait until the test ends them; each call's options are kept. */
function heldLoader(): { calls: LoaderOptions[]; release: Array<(m: CertificateMaterial | undefined) => void>; loader: (name: string, o: LoaderOptions) => Promise<CertificateMaterial | undefined> } {
  const calls: LoaderOptions[] = [];
  const release: Array<(m: CertificateMaterial | undefined) => void> = [];
  return {
    calls,
    release,
    loader: (_name, options) => {
      calls.push(options);
      return new Promise((resolve) => {
        release.push(resolve);
        // Like the on-demand decision: stop as soon as nobody waits.
        options.abandoned.addEventListener('abort', () => resolve(undefined), { once: true });
      });
    },
  };
}

describe('ContextCache: abandoned loads', () => {
  test('abandoned when the last waiting handshake leaves, not before; not remembered', async () => {
    const held = heldLoader();
    const cache = new ContextCache({ loader: held.loader });
    try {
      const a = new AbortController();
      const b = new AbortController();
      const first = cache.resolve('shared.example.test', { signal: a.signal });
      const second = cache.resolve('shared.example.test', { signal: b.signal });
      await Promise.resolve();
      assert.equal(held.calls.length, 1, 'one load for both handshakes');
      a.abort();
      assert.equal(held.calls[0]?.abandoned.aborted, false, 'the other handshake still waits');
      b.abort();
      assert.equal(held.calls[0]?.abandoned.aborted, true, 'abandoned once both left');
      assert.equal(held.calls[0]?.signal.aborted, false, 'the close signal is another thing');
      assert.deepEqual(await Promise.all([first, second]), [undefined, undefined]);
      assert.equal(cache.stats().loadsAbandoned, 1);

      // Not remembered as missing: the next handshake gets a load of its own.
      const third = cache.resolve('shared.example.test', { signal: new AbortController().signal });
      await Promise.resolve();
      assert.equal(held.calls.length, 2);
      assert.equal(cache.stats().negativeHits, 0);
      held.release[1]?.(undefined);
      assert.equal(await third, undefined);
      // An answer that was not abandoned is remembered.
      assert.equal(await cache.resolve('shared.example.test'), undefined);
      assert.equal(held.calls.length, 2);
      assert.equal(cache.stats().negativeHits, 1);
    } finally {
      cache.close();
    }
  });

  test('a caller without a signal pins the load: it is never abandoned', async () => {
    const held = heldLoader();
    const cache = new ContextCache({ loader: held.loader });
    try {
      const a = new AbortController();
      const withSignal = cache.resolve('pinned.example.test', { signal: a.signal });
      const without = cache.resolve('pinned.example.test');
      await Promise.resolve();
      a.abort();
      assert.equal(held.calls[0]?.abandoned.aborted, false);
      held.release[0]?.(undefined);
      assert.deepEqual(await Promise.all([withSignal, without]), [undefined, undefined]);
      assert.equal(cache.stats().loadsAbandoned, 0);
    } finally {
      cache.close();
    }
  });

  test('close() aborts the abandoned signal of loads in flight', async () => {
    const held = heldLoader();
    const cache = new ContextCache({ loader: held.loader });
    const pending = cache.resolve('closing.example.test', { signal: new AbortController().signal });
    await Promise.resolve();
    cache.close();
    assert.equal(held.calls[0]?.abandoned.aborted, true);
    assert.equal(await pending, undefined);
  });
});
