import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import type tls from 'node:tls';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { buildMaterial, type CertificateMaterial } from '../../src/tls/certificate-material.js';
import { ContextCache } from '../../src/tls/context-cache.js';
import { SECURE_CONTEXT_NATIVE_BYTES, releasedContexts } from '../../src/tls/released-contexts.js';
import { createTestLeaf } from '../helpers/tls-certs.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const CAPACITY = 4;
const LOADS = 16;

/** Collects and lets finalizers run; a bounded number of rounds, not a timeout. */
async function collect(done: () => boolean): Promise<void> {
  for (let round = 0; round < 20 && !done(); round++) {
    gc();
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

describe('ContextCache: contexts it lets go of', () => {
  const materials: CertificateMaterial[] = [];
  before(async () => {
    for (let i = 0; i < LOADS; i++) {
      const leaf = await createTestLeaf(undefined, { names: [`n${i}.release.test`] });
      materials.push(buildMaterial(leaf.chainPem, leaf.keyPem, { managed: true }));
    }
  });

  it('holds capacity contexts after loads beyond it, and accounts each evicted one to V8 while it is alive', () => {
    const cache = new ContextCache({ capacity: CAPACITY });
    const released0 = releasedContexts();
    // Kept alive here, so their accounting buffers are too: what is measured is what the cache attached.
    const seen: tls.SecureContext[] = [];
    const buffers0 = process.memoryUsage().arrayBuffers;
    for (const m of materials) {
      cache.add(m);
      seen.push(cache.getCached(m.names[0] as string) as tls.SecureContext);
    }
    const stats = cache.stats();
    assert.equal(stats.certificates, CAPACITY);
    assert.equal(stats.evictions, LOADS - CAPACITY);
    assert.equal(releasedContexts() - released0, LOADS - CAPACITY);
    const grown = process.memoryUsage().arrayBuffers - buffers0;
    assert.ok(grown >= (LOADS - CAPACITY) * SECURE_CONTEXT_NATIVE_BYTES, `array buffers grew by ${grown}`);
    assert.equal(seen.length, LOADS);
    cache.close();
  });

  it('keeps no reference to an evicted or rebuilt context: they are collected, the cached ones are not', async () => {
    const cache = new ContextCache({ capacity: CAPACITY });
    let collected = 0;
    const registry = new FinalizationRegistry<number>(() => collected++);
    for (const m of materials) {
      cache.add(m);
      registry.register(cache.getCached(m.names[0] as string) as tls.SecureContext, 0);
    }
    await collect(() => collected >= LOADS - CAPACITY);
    assert.equal(collected, LOADS - CAPACITY);
    const cached = materials.slice(-CAPACITY).map((m) => cache.getCached(m.names[0] as string));
    assert.ok(cached.every((c) => c !== undefined));

    // New context options rebuild every cached context; the old ones are let go of (and accounted) too.
    const released0 = releasedContexts();
    await cache.setContextOptions({ minVersion: 'TLSv1.3' });
    assert.equal(releasedContexts() - released0, CAPACITY);
    cached.length = 0;
    await collect(() => collected >= LOADS);
    assert.equal(collected, LOADS);
    cache.close();
  });
});
