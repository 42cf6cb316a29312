import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CaGate } from '../../src/acme/ca-gate.js';
import type { AcmeDirectory } from '../../src/acme/directories.js';
import { DEFAULT_RETRY_POLICY, withRetry } from '../../src/acme/retry.js';
import { AcmeProblemError, AcmeRateLimitedError, AcmeUnavailableError } from '../../src/errors.js';
import { FakeClock } from '../../src/testing/fake-clock.js';

const DIR = 'https://ca.test/dir';
const directory: AcmeDirectory = { newNonce: 'https://ca.test/nonce', newAccount: 'https://ca.test/acct', newOrder: 'https://ca.test/order' };
const problem = (status: number, url: string, retryAfterMs: number): AcmeProblemError =>
  new AcmeProblemError({ type: status === 429 ? 'urn:ietf:params:acme:error:rateLimited' : 'about:blank', status, url, retryAfterMs });

describe('CaGate', () => {
  it('a 503 in one operation holds another until the Retry-After, without calling it', async () => {
    const clock = new FakeClock();
    const gate = new CaGate(DIR, clock);
    const start = clock.now();
    const calls: { op: string; at: number }[] = [];
    let failed = false;
    const ctx = { policy: DEFAULT_RETRY_POLICY, clock, what: 'test', gate };
    const first = withRetry(async () => {
      calls.push({ op: 'first', at: clock.now() - start });
      if (!failed) {
        failed = true;
        throw problem(503, 'https://ca.test/finalize/1', 5_000);
      }
      return 'first';
    }, ctx);
    await clock.advance(0);
    const second = withRetry(async () => {
      calls.push({ op: 'second', at: clock.now() - start });
      return 'second';
    }, ctx);
    await clock.advance(4_999);
    assert.deepEqual(calls, [{ op: 'first', at: 0 }], 'nothing sent inside the wait');
    await clock.advance(1);
    assert.deepEqual(await Promise.all([first, second]), ['first', 'second']);
    assert.deepEqual(calls.slice(1).map((c) => c.at), [5_000, 5_000]);
  });

  it('an operation that may not wait that long fails at once with the retry time', async () => {
    const clock = new FakeClock();
    const gate = new CaGate(DIR, clock);
    assert.equal(gate.observe(problem(503, DIR, 120_000)), true);
    let called = false;
    await assert.rejects(
      withRetry(async () => { called = true; }, { policy: DEFAULT_RETRY_POLICY, clock, what: 'test', gate }),
      (e: unknown) => e instanceof AcmeUnavailableError && e.code === 'ERR_ACME_UNAVAILABLE' && e.retryAt === clock.now() + 120_000,
    );
    assert.equal(called, false);
  });

  it('a 429 on an order stays that order\'s; a 429 on newNonce or the directory holds the CA', () => {
    const clock = new FakeClock();
    const gate = new CaGate(DIR, clock);
    gate.learn(directory);
    assert.equal(gate.observe(problem(429, directory.newOrder, 60_000)), false);
    assert.equal(gate.blockedUntil(), undefined);
    assert.equal(gate.observe(problem(429, directory.newNonce, 60_000)), true);
    assert.equal(gate.blockedUntil(), clock.now() + 60_000);
    assert.ok(gate.error() instanceof AcmeRateLimitedError);
  });

  it('a later, shorter Retry-After does not shorten a running wait', async () => {
    const clock = new FakeClock();
    const gate = new CaGate(DIR, clock);
    gate.observe(problem(503, DIR, 60_000));
    await clock.advance(10_000);
    gate.observe(problem(503, DIR, 1_000));
    assert.equal(gate.blockedUntil(), clock.now() + 50_000);
    await clock.advance(50_000);
    assert.equal(gate.blockedUntil(), undefined);
  });
});
