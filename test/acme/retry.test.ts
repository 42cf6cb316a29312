import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AcmeNetworkError } from '../../src/acme/problem.js';
import { DEFAULT_RETRY_POLICY, withRetry, type RetryPolicy } from '../../src/acme/retry.js';
import { AbortedError, AcmeProblemError, AcmeRateLimitedError } from '../../src/errors.js';
import { FakeClock } from '../../src/testing/fake-clock.js';

const policy: RetryPolicy = { maxAttempts: 4, baseDelayMs: 1000, maxDelayMs: 4000, maxRetryAfterMs: 60_000, deadlineMs: 600_000, maxBadNonceRetries: 20 };

function problem(type: string, status: number, retryAfterMs?: number): AcmeProblemError {
  return new AcmeProblemError({ type: `urn:ietf:params:acme:error:${type}`, status, detail: type, retryAfterMs });
}
const refused = (): AcmeNetworkError => new AcmeNetworkError('refused', 'ECONNREFUSED', undefined);

/** Runs withRetry, advancing the fake clock until the promise settles; returns the attempt times (ms after start). */
async function run(clock: FakeClock, failures: unknown[], p: RetryPolicy = policy, signal?: AbortSignal) {
  const start = clock.now();
  const times: number[] = [];
  const promise = withRetry(async () => {
    times.push(clock.now() - start);
    const next = failures.shift();
    if (next !== undefined) throw next;
    return 'ok';
  }, { policy: p, clock, what: 'test', signal });
  let settled = false;
  promise.then(() => { settled = true; }, () => { settled = true; });
  await clock.advance(0); // let the first failure be handled at the start time
  for (let i = 0; i < 100 && !settled; i++) await clock.advance(250);
  return { promise, times };
}

describe('withRetry', () => {
  it('retries badNonce at once with a new attempt', async () => {
    const clock = new FakeClock();
    const { promise, times } = await run(clock, [problem('badNonce', 400), problem('badNonce', 400)]);
    assert.equal(await promise, 'ok');
    assert.deepEqual(times, [0, 0, 0]);
  });

  it('gives badNonce its own budget, not counted against maxAttempts, and stops at it', async () => {
    const clock = new FakeClock();
    const nonces = Array.from({ length: 10 }, () => problem('badNonce', 400));
    const ok = await run(clock, [...nonces, refused(), refused()], { ...policy, maxAttempts: 3, maxBadNonceRetries: 10 });
    assert.equal(await ok.promise, 'ok', 'ten badNonce and two network errors fit in maxAttempts 3');
    const tooMany = await run(clock, Array.from({ length: 12 }, () => problem('badNonce', 400)), { ...policy, maxAttempts: 1, maxBadNonceRetries: 10 });
    await assert.rejects(tooMany.promise, (e: unknown) => e instanceof AcmeProblemError && e.shortType === 'badNonce');
    assert.equal(tooMany.times.length, 11, 'one attempt plus ten badNonce retries');
  });

  it('honours Retry-After on 429 and 503', async () => {
    const clock = new FakeClock();
    const { promise, times } = await run(clock, [problem('rateLimited', 429, 3000), problem('serverInternal', 503, 2000)]);
    assert.equal(await promise, 'ok');
    assert.deepEqual(times, [0, 3000, 5000]);
  });

  it('fails with AcmeRateLimitedError carrying retryAt when Retry-After exceeds the cap', async () => {
    const clock = new FakeClock();
    const start = clock.now();
    const { promise, times } = await run(clock, [problem('rateLimited', 429, 3_600_000)]);
    await assert.rejects(promise, (e: unknown) => {
      assert.ok(e instanceof AcmeRateLimitedError);
      assert.equal(e.code, 'ERR_ACME_RATE_LIMITED');
      assert.equal(e.retryAt, start + 3_600_000);
      return true;
    });
    assert.deepEqual(times, [0]);
  });

  it('backs off exponentially on network errors and gives up after maxAttempts', async () => {
    const clock = new FakeClock();
    const { promise, times } = await run(clock, [refused(), refused(), refused(), refused(), refused()]);
    await assert.rejects(promise, AcmeNetworkError);
    assert.deepEqual(times, [0, 1000, 3000, 7000]);
  });

  it('does not retry client errors or TLS trust failures', async () => {
    const clock = new FakeClock();
    const malformed = await run(clock, [problem('malformed', 400)]);
    await assert.rejects(malformed.promise, AcmeProblemError);
    assert.deepEqual(malformed.times, [0]);
    const tls = await run(clock, [new AcmeNetworkError('tls', 'SELF_SIGNED_CERT_IN_CHAIN', undefined)]);
    await assert.rejects(tls.promise, AcmeNetworkError);
    assert.deepEqual(tls.times, [0]);
  });

  it('stops at the overall deadline', async () => {
    const clock = new FakeClock();
    const { promise, times } = await run(clock, [refused(), refused(), refused()], { ...policy, maxAttempts: 10, deadlineMs: 2500 });
    await assert.rejects(promise, AcmeNetworkError);
    assert.deepEqual(times, [0, 1000]);
  });

  it('stops waiting when aborted', async () => {
    const clock = new FakeClock();
    const controller = new AbortController();
    const promise = withRetry(async () => { throw problem('rateLimited', 429, 30_000); }, { policy, clock, what: 't', signal: controller.signal });
    promise.catch(() => undefined);
    await clock.advance(1000);
    controller.abort();
    await assert.rejects(promise, AbortedError);
  });

  it('has bounded defaults', () => {
    assert.ok(DEFAULT_RETRY_POLICY.maxAttempts >= 2 && DEFAULT_RETRY_POLICY.maxAttempts <= 10);
    assert.ok(Object.isFrozen(DEFAULT_RETRY_POLICY));
  });
});
