/** The persisted failure state of a name (renewal/failure-state.ts). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AcmeRateLimitedError, BackoffError } from '../../src/errors.js';
import { blockedBy, clearFailureState, hasFailureState, listFailureStates, loadFailureState, saveFailureState } from '../../src/renewal/failure-state.js';
import { failureStateKey } from '../../src/storage/layout.js';
import { MemoryStorage } from '../../src/storage/memory.js';

const NOW = Date.UTC(2026, 5, 1);

describe('failure state', () => {
  it('round-trips failures, next attempt, last error and finality; clear removes it', async () => {
    const storage = new MemoryStorage();
    const state = { failures: 2, nextAttemptAt: NOW + 600_000, lastError: { code: 'ERR_CHALLENGE_FAILED', message: 'no', at: NOW }, final: true };
    await saveFailureState(storage, 'Example.TEST', state);
    assert.deepEqual(await loadFailureState(storage, 'example.test'), state);
    await clearFailureState(storage, 'example.test');
    assert.equal(await loadFailureState(storage, 'example.test'), undefined);
    await clearFailureState(storage, 'example.test'); // already gone: no error
  });

  it('persists only error codes of the README table', async () => {
    const storage = new MemoryStorage();
    await saveFailureState(storage, 'errno.test', { failures: 1, nextAttemptAt: NOW, lastError: { code: 'ECONNRESET', message: 'reset', at: NOW } });
    const raw = JSON.parse((await storage.load(failureStateKey('errno.test'))).toString()) as { lastError: Record<string, unknown> };
    assert.deepEqual(raw.lastError, { message: 'reset', at: NOW });
  });

  it('an unreadable or empty record is as if absent', async () => {
    const storage = new MemoryStorage();
    await storage.store(failureStateKey('bad.test'), Buffer.from('{not json'));
    await storage.store(failureStateKey('zero.test'), Buffer.from(JSON.stringify({ failures: 0, nextAttemptAt: NOW })));
    assert.equal(await loadFailureState(storage, 'bad.test'), undefined);
    assert.equal(await loadFailureState(storage, 'zero.test'), undefined);
  });

  it('lists the names that have a record with one call', async () => {
    const storage = new MemoryStorage();
    assert.equal((await listFailureStates(storage)).size, 0);
    await saveFailureState(storage, 'a.test', { failures: 1, nextAttemptAt: NOW });
    await saveFailureState(storage, '*.b.test', { failures: 1, nextAttemptAt: NOW });
    const listed = await listFailureStates(storage);
    assert.ok(hasFailureState(listed, 'a.test'));
    assert.ok(hasFailureState(listed, '*.b.test'));
    assert.ok(!hasFailureState(listed, 'c.test'));
  });

  it('blocks while the backoff runs and for ever when final; a CA wait keeps its own type', () => {
    assert.equal(blockedBy('x.test', undefined, NOW), undefined);
    assert.equal(blockedBy('x.test', { failures: 1, nextAttemptAt: NOW }, NOW), undefined);
    const running = blockedBy('x.test', { failures: 3, nextAttemptAt: NOW + 1, lastError: { code: 'ERR_STORAGE', message: 'EROFS', at: NOW } }, NOW);
    assert.ok(running instanceof BackoffError);
    assert.equal(running.code, 'ERR_BACKOFF');
    assert.equal(running.nextAttemptAt, NOW + 1);
    assert.equal(running.lastErrorCode, 'ERR_STORAGE');
    const final = blockedBy('x.test', { failures: 1, nextAttemptAt: NOW - 1, final: true }, NOW);
    assert.ok(final instanceof BackoffError && final.final && final.nextAttemptAt === undefined);
    const wait = blockedBy('x.test', { failures: 1, nextAttemptAt: NOW + 5, lastError: { code: 'ERR_ACME_RATE_LIMITED', message: 'later', at: NOW } }, NOW);
    assert.ok(wait instanceof AcmeRateLimitedError && wait.retryAt === NOW + 5);
  });
});
