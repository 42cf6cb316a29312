import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import type tls from 'node:tls';
import { InvalidNameError, InvalidOptionError } from '../../src/errors.js';
import { normalizeServerName } from '../../src/names.js';
import { FakeClock } from '../../src/testing/fake-clock.js';
import { buildMaterial, type CertificateMaterial } from '../../src/tls/certificate-material.js';
import { ContextCache, type EvictedCertificate } from '../../src/tls/context-cache.js';
import { createTestCa, createTestLeaf } from '../helpers/tls-certs.js';

async function material(names: string[], managed = true): Promise<CertificateMaterial> {
  const leaf = await createTestLeaf(undefined, { names });
  return buildMaterial(leaf.chainPem, leaf.keyPem, { managed });
}

/** Which material a context belongs to: contexts are compared by identity through a reverse map. */
function contextsOf(cache: ContextCache, names: string[]): Map<tls.SecureContext, string> {
  const out = new Map<tls.SecureContext, string>();
  for (const n of names) {
    const ctx = cache.getCached(n);
    if (ctx) out.set(ctx, n);
  }
  return out;
}

describe('ContextCache', () => {
  let a: CertificateMaterial;
  let wildcard: CertificateMaterial;
  before(async () => {
    a = await material(['a.example.test']);
    wildcard = await material(['*.example.test']);
  });

  it('looks up exact, then one-label wildcard, never deeper or the bare domain', async () => {
    const cache = new ContextCache();
    cache.add(a);
    cache.add(wildcard);
    const byCtx = contextsOf(cache, ['a.example.test', '*.example.test']);
    assert.equal(byCtx.get((await cache.resolve('a.example.test'))!), 'a.example.test');
    assert.equal(byCtx.get((await cache.resolve('b.example.test'))!), '*.example.test');
    assert.equal(await cache.resolve('x.b.example.test'), undefined);
    assert.equal(await cache.resolve('example.test'), undefined);
    cache.close();
  });

  it('falls back to the default certificate, and has none unless set', async () => {
    const cache = new ContextCache();
    assert.equal(await cache.resolve('unknown.test'), undefined);
    cache.setDefault(a);
    assert.equal(await cache.resolve('unknown.test'), cache.defaultContext());
    assert.ok(cache.defaultContext());
    cache.close();
  });

  it('swaps a renewed certificate in one step and drops names the replacement lacks', async () => {
    const cache = new ContextCache();
    const first = await material(['one.test', 'two.test']);
    cache.add(first);
    const before = cache.getCached('one.test');
    const renewed = await material(['one.test']);
    cache.replace(first.id, renewed);
    const after = cache.getCached('one.test');
    assert.ok(after && after !== before);
    assert.equal(cache.peek('one.test')?.serialNumber, renewed.serialNumber);
    assert.equal(cache.getCached('two.test'), undefined);
    assert.equal(cache.stats().certificates, 1);
    cache.close();
  });

  it('evicts the least recently used managed certificate, reports it, and never evicts unmanaged ones', async () => {
    const evicted: EvictedCertificate[] = [];
    const cache = new ContextCache({ capacity: 2, onEvict: (e) => evicted.push(e) });
    const [m1, m2, m3] = await Promise.all([material(['m1.test']), material(['m2.test']), material(['m3.test'])]);
    const pinned = await material(['pinned.test'], false);
    cache.add(pinned);
    cache.add(m1!);
    cache.add(m2!);
    cache.getCached('m1.test'); // m2 is now least recently used
    cache.add(m3!);
    assert.deepEqual(evicted, [{ id: m2!.id, names: ['m2.test'] }]);
    assert.equal(cache.has('m2.test'), false);
    assert.ok(cache.has('m1.test') && cache.has('m3.test') && cache.has('pinned.test'));
    assert.equal(cache.stats().evictions, 1);
    cache.close();
  });

  it('coalesces concurrent loads of one name into one loader call and caches the result', async () => {
    let calls = 0;
    const lazy = await material(['lazy.test']);
    const cache = new ContextCache({
      loader: async () => {
        calls++;
        await new Promise((r) => setTimeout(r, 20));
        return lazy;
      },
    });
    const results = await Promise.all(Array.from({ length: 50 }, () => cache.resolve('lazy.test')));
    assert.equal(calls, 1);
    assert.ok(results.every((r) => r !== undefined && r === results[0]));
    assert.equal(cache.getCached('lazy.test'), results[0]);
    assert.equal(cache.stats().loads, 1);
    cache.close();
  });

  it('remembers names the loader did not find, briefly and in bounded memory', async () => {
    const clock = new FakeClock();
    const asked: string[] = [];
    const cache = new ContextCache({
      clock,
      negativeTtlMs: 1000,
      negativeCapacity: 3,
      loader: async (name) => {
        asked.push(name);
        return undefined;
      },
    });
    await cache.resolve('nope.test');
    await cache.resolve('nope.test');
    assert.deepEqual(asked, ['nope.test']);
    assert.equal(cache.stats().negativeHits, 1);
    await clock.advance(1001);
    await cache.resolve('nope.test');
    assert.deepEqual(asked, ['nope.test', 'nope.test']);
    // A flood of distinct unknown names keeps at most negativeCapacity of them: the oldest is forgotten.
    for (const n of ['n1.test', 'n2.test', 'n3.test']) await cache.resolve(n);
    asked.length = 0;
    await cache.resolve('n3.test');
    await cache.resolve('nope.test');
    assert.deepEqual(asked, ['nope.test']);
    cache.close();
  });

  it('bounds the wait for a slow loader and still caches its late answer', async () => {
    const clock = new FakeClock();
    let release: (m: CertificateMaterial) => void = () => {};
    const slow = await material(['slow.test']);
    let calls = 0;
    const cache = new ContextCache({
      clock,
      loadTimeoutMs: 500,
      loader: () => {
        calls++;
        return new Promise((resolve) => (release = resolve));
      },
    });
    const waiting = cache.resolve('slow.test');
    await clock.advance(500);
    assert.equal(await waiting, undefined);
    assert.equal(cache.stats().loadTimeouts, 1);
    release(slow);
    await new Promise((r) => setImmediate(r));
    assert.ok(cache.getCached('slow.test'));
    assert.equal(calls, 1);
    assert.equal(clock.pendingTimers, 0);
    cache.close();
  });

  it('does not let a load in flight bring back a name removed meanwhile', async () => {
    let release: (m: CertificateMaterial) => void = () => {};
    const gone = await material(['gone.test']);
    const cache = new ContextCache({ loader: () => new Promise((resolve) => (release = resolve)) });
    const waiting = cache.resolve('gone.test');
    cache.remove(['gone.test']);
    release(gone);
    assert.equal(await waiting, undefined);
    assert.equal(cache.has('gone.test'), false);
    cache.close();
  });

  it('rejects an invalid SNI value before the loader', async () => {
    const asked: string[] = [];
    const cache = new ContextCache({ loader: async (n) => (asked.push(n), undefined) });
    for (const bad of ['a/../../foo', 'a\u0000b.test', `${'a'.repeat(300)}.test`, '*', '*.example.test', '127.0.0.1']) {
      await assert.rejects(cache.resolve(bad), InvalidNameError);
    }
    assert.deepEqual(asked, []);
    await cache.resolve('UPPER.Example.TEST.');
    assert.deepEqual(asked, ['upper.example.test']);
    cache.close();
  });

  it('serves a cached name without calling the loader or normalising (hot path)', async () => {
    let normalizeCalls = 0;
    let loaderCalls = 0;
    const cache = new ContextCache({
      normalize: (s) => (normalizeCalls++, normalizeServerName(s)),
      loader: async () => (loaderCalls++, undefined),
    });
    cache.add(a);
    for (let i = 0; i < 1000; i++) assert.ok(cache.getCached('a.example.test'));
    assert.equal(normalizeCalls, 0);
    assert.equal(loaderCalls, 0);
    assert.equal(cache.stats().hits, 1000);
    cache.close();
  });

  it('rebuilds contexts with new options; invalid options change nothing', async () => {
    const cache = new ContextCache();
    cache.add(a);
    const before = cache.getCached('a.example.test');
    assert.throws(() => cache.setContextOptions({ ca: 'not a certificate' }), InvalidOptionError);
    assert.equal(cache.getCached('a.example.test'), before);
    assert.throws(() => cache.setContextOptions({ cert: a.certPem } as never), InvalidOptionError);
    const ca = await createTestCa();
    await cache.setContextOptions({ ca: ca.certPem, minVersion: 'TLSv1.3' });
    const after = cache.getCached('a.example.test');
    assert.ok(after && after !== before);
    assert.equal(cache.contextOptions.minVersion, 'TLSv1.3');
    cache.close();
  });

  it('serves new options from the moment setContextOptions returns, before the background rebuild', async () => {
    const cache = new ContextCache();
    const many = await Promise.all(Array.from({ length: 40 }, (_, i) => material([`r${i}.test`])));
    for (const m of many) cache.add(m);
    const before = many.map((m) => cache.getCached(m.names[0]!));
    const done = cache.setContextOptions({ minVersion: 'TLSv1.3' });
    // The last entries are not reached by the first background batch yet: used now, they are rebuilt now.
    assert.notEqual(cache.getCached('r39.test'), before[39]);
    await done;
    many.forEach((m, i) => assert.notEqual(cache.getCached(m.names[0]!), before[i]));
    cache.close();
  });

  it('finds names in another case or under a wildcard synchronously, without the loader', () => {
    let loads = 0;
    const cache = new ContextCache({ loader: async () => (loads++, undefined) });
    cache.add(wildcard);
    assert.ok(cache.find('X.Example.Test.'));
    assert.equal(cache.find('example.test'), undefined);
    assert.throws(() => cache.find('a/b'), InvalidNameError);
    assert.equal(loads, 0);
    cache.close();
  });

  it('validates its options', () => {
    assert.throws(() => new ContextCache({ capacity: 0 }), InvalidOptionError);
    assert.throws(() => new ContextCache({ loadTimeoutMs: -1 }), InvalidOptionError);
    assert.throws(() => new ContextCache({ loader: 'x' as never }), InvalidOptionError);
  });
});
