import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { AcmeUnreachableError, InvalidOptionError } from '../../src/errors.js';
import {
  DEFAULT_BACKOFF_JITTER_RATIO,
  nextAttemptAt,
  parseBackoffState,
  recordFailure,
} from '../../src/renewal/backoff.js';

const MINUTE = 60_000;
const DAY = 24 * 60 * MINUTE;
const NOW = Date.UTC(2026, 0, 1);
const noJitter = { random: () => 0 };

describe('nextAttemptAt', () => {
  test('1 min, 10 min, 100 min, then daily', () => {
    const waits = [1, 2, 3, 4, 5, 30].map((f) => nextAttemptAt(f, NOW, noJitter) - NOW);
    assert.deepEqual(waits, [MINUTE, 10 * MINUTE, 100 * MINUTE, DAY, DAY, DAY]);
  });

  test('jitter adds at most 10% of the step', () => {
    for (const failures of [1, 2, 3, 4]) {
      const base = nextAttemptAt(failures, NOW, noJitter) - NOW;
      const most = nextAttemptAt(failures, NOW, { random: () => 0.999999 }) - NOW;
      assert.ok(most > base && most <= base * (1 + DEFAULT_BACKOFF_JITTER_RATIO), `${failures}: ${base} -> ${most}`);
    }
  });

  test('never sooner than minIntervalMs', () => {
    assert.equal(nextAttemptAt(1, NOW, { ...noJitter, minIntervalMs: 12 * MINUTE }), NOW + 12 * MINUTE);
    assert.equal(nextAttemptAt(3, NOW, { ...noJitter, minIntervalMs: 12 * MINUTE }), NOW + 100 * MINUTE);
  });

  test('a wait that would skip past notAfter is cut to half the time left', () => {
    const notAfter = NOW + 10 * 60 * MINUTE; // 10 hours left, daily step
    assert.equal(nextAttemptAt(4, NOW, { ...noJitter, notAfter }), NOW + 5 * 60 * MINUTE);
    // ...but not below the floor.
    assert.equal(nextAttemptAt(4, NOW, { ...noJitter, notAfter: NOW + MINUTE }), NOW + MINUTE);
    // Already expired: the normal step.
    assert.equal(nextAttemptAt(4, NOW, { ...noJitter, notAfter: NOW - 1 }), NOW + DAY);
  });

  test("the CA's Retry-After wins", () => {
    assert.equal(nextAttemptAt(1, NOW, { ...noJitter, retryAfter: NOW + 3 * 60 * MINUTE }), NOW + 3 * 60 * MINUTE);
    assert.equal(nextAttemptAt(2, NOW, { ...noJitter, retryAfter: NOW + MINUTE }), NOW + 10 * MINUTE);
  });

  test('custom steps; bad input is a typed error', () => {
    assert.equal(nextAttemptAt(5, NOW, { ...noJitter, steps: [5, 50] }), NOW + MINUTE, 'floor still applies');
    assert.equal(nextAttemptAt(2, NOW, { ...noJitter, steps: [5, 50], minIntervalMs: 0 }), NOW + 50);
    assert.throws(() => nextAttemptAt(0, NOW), InvalidOptionError);
    assert.throws(() => nextAttemptAt(1, NOW, { steps: [] }), InvalidOptionError);
    assert.throws(() => nextAttemptAt(1, NOW, { jitter: 2 }), InvalidOptionError);
  });
});

describe('backoff state', () => {
  test('recordFailure counts up and keeps a short error summary; the state survives a JSON round trip', () => {
    const first = recordFailure(undefined, new AcmeUnreachableError('connection refused'), NOW, noJitter);
    assert.deepEqual(first, {
      failures: 1,
      nextAttemptAt: NOW + MINUTE,
      lastError: { message: 'connection refused', at: NOW, code: 'ERR_ACME_UNREACHABLE' },
    });
    const second = recordFailure(first, 'plain string', NOW + MINUTE, noJitter);
    assert.equal(second.failures, 2);
    assert.equal(second.nextAttemptAt, NOW + 11 * MINUTE);
    assert.deepEqual(parseBackoffState(JSON.parse(JSON.stringify(second))), second);
  });

  test('malformed sidecar data reads as no state', () => {
    assert.equal(parseBackoffState(null), undefined);
    assert.equal(parseBackoffState({ failures: -1, nextAttemptAt: 1 }), undefined);
    assert.equal(parseBackoffState({ failures: 1, nextAttemptAt: 'soon' }), undefined);
    assert.deepEqual(parseBackoffState({ failures: 2, nextAttemptAt: 5, lastError: 'x' }), { failures: 2, nextAttemptAt: 5 });
  });
});
