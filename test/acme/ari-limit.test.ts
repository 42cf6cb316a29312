/**
 * The per-CA renewalInfo limiter (src/acme/ari-limit.ts): a token bucket on the
 * injected clock, one request per certificate at a time, and a pause after a
 * 429/503 with Retry-After. Counted, never timed: the fake clock moves.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { AriLimiter, ariLimiter } from '../../src/acme/ari-limit.js';
import { DEFAULT_ARI_RATE_LIMIT } from '../../src/defaults.js';
import { AcmeProblemError, AcmeRateLimitedError } from '../../src/errors.js';
import { FakeClock } from '../../src/testing/fake-clock.js';

const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('renewalInfo limiter per CA', () => {
  test('1,000 certificates asked at once: never more requests than the bucket allows at any moment', async () => {
    const clock = new FakeClock(0);
    const limiter = new AriLimiter('https://ca.test/dir', clock, { capacity: 20, refillAmount: 1, refillIntervalMs: 50 });
    let sent = 0;
    const perCert = new Map<string, number>();
    const asks = Array.from({ length: 1000 }, (_, i) =>
      limiter.run(`cert-${i}`, async () => {
        sent++;
        perCert.set(`cert-${i}`, (perCert.get(`cert-${i}`) ?? 0) + 1);
        return i;
      }),
    );
    await flush();
    assert.equal(sent, 20, 'the burst is the capacity');
    for (let step = 1; step <= 100; step++) {
      await clock.advance(50);
      assert.equal(sent, Math.min(1000, 20 + step), `at ${step * 50} ms: the burst plus one per refill, no more`);
    }
    await clock.advance(50 * 900);
    assert.deepEqual(await Promise.all(asks), Array.from({ length: 1000 }, (_, i) => i));
    assert.equal(sent, 1000);
    assert.ok([...perCert.values()].every((n) => n === 1), 'each certificate asked once');
    assert.equal(limiter.stats.requests, 1000);
  });

  test('33 asks for one certificate at once send one request (certmagic #297) and share its answer', async () => {
    const clock = new FakeClock(0);
    const limiter = new AriLimiter('https://ca.test/dir', clock, DEFAULT_ARI_RATE_LIMIT);
    let sent = 0;
    let release!: (value: string) => void;
    const answer = new Promise<string>((resolve) => (release = resolve));
    const asks = Array.from({ length: 33 }, () => limiter.run('same', () => (sent++, answer)));
    await flush();
    release('window');
    assert.deepEqual(new Set(await Promise.all(asks)), new Set(['window']));
    assert.equal(sent, 1);
    assert.equal(limiter.stats.shared, 32);
    // Once answered, the next ask is a new request.
    await limiter.run('same', async () => sent++);
    assert.equal(sent, 2);
  });

  test('a 429 with Retry-After on renewalInfo holds every certificate of that CA until it passes, without a request', async () => {
    const clock = new FakeClock(0);
    const limiter = new AriLimiter('https://ca.test/dir', clock, DEFAULT_ARI_RATE_LIMIT);
    let sent = 0;
    const limited = new AcmeProblemError({ type: 'urn:ietf:params:acme:error:rateLimited', status: 429, detail: 'slow down', retryAfterMs: 120_000 });
    await assert.rejects(limiter.run('a', async () => {
      sent++;
      throw limited;
    }), AcmeProblemError);
    assert.equal(limiter.pausedUntil(), 120_000);
    for (const id of ['a', 'b', 'c']) {
      await assert.rejects(limiter.run(id, async () => sent++), (e: unknown) => e instanceof AcmeRateLimitedError && e.retryAt === 120_000);
    }
    assert.equal(sent, 1, 'no request while the pause runs');
    await clock.advance(120_000);
    assert.equal(await limiter.run('b', async () => (sent++, 'ok')), 'ok');
    assert.equal(sent, 2);
  });

  test('one limiter per directory URL and clock, shared by every issuer of the process', () => {
    const clock = new FakeClock(0);
    assert.equal(ariLimiter('https://ca.test/dir', clock), ariLimiter('https://ca.test/dir', clock));
    assert.notEqual(ariLimiter('https://ca.test/dir', clock), ariLimiter('https://other.test/dir', clock));
    assert.notEqual(ariLimiter('https://ca.test/dir', clock), ariLimiter('https://ca.test/dir', new FakeClock(0)));
  });
});
