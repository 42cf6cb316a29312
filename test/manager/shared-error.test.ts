/**
 * One error object can fail several names at once: a directory read refused
 * by the CA (503 + Retry-After) is shared by every name waiting on it. Each of
 * those names must still count the failure as its own: `cert_failed`,
 * `status().lastError` and a backoff, once per name. (Found when the CA-wide
 * Retry-After and per-name failure accounting met: one name in three lost its
 * event, at random, depending on which names shared the read.)
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { StorageError } from '../../src/errors.js';
import type { IssueRequest, Issuer, IssuedCertificate } from '../../src/issuers/types.js';
import { CertKeeper, ManageError } from '../../src/index.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import { FakeClock } from '../../src/testing/fake-clock.js';
import { silentLogger } from '../helpers/logging.js';

/** Fails every request with one and the same error object. */
class SharedFailureIssuer implements Issuer {
  readonly key = 'shared-failure';
  readonly error = new StorageError('one shared failure');
  calls = 0;
  async issue(_request: IssueRequest): Promise<IssuedCertificate> {
    this.calls += 1;
    throw this.error;
  }
}

describe('a failure shared by several names', () => {
  test('is reported for each name: one cert_failed, lastError and backoff per name', async () => {
    const issuer = new SharedFailureIssuer();
    const clock = new FakeClock(Date.UTC(2026, 11, 1));
    const keeper = new CertKeeper({
      storage: new MemoryStorage(),
      issuers: [issuer],
      logger: silentLogger(),
      clock,
      challenges: { http01: false, tlsAlpn01: { listener: false } },
    });
    const failed: string[] = [];
    keeper.on('cert_failed', (event) => failed.push(...event.names));
    try {
      const names = ['a.shared.test', 'b.shared.test', 'c.shared.test'];
      const error = await keeper.manageSync(names).then(() => assert.fail('should fail'), (e: unknown) => e);
      assert.ok(error instanceof ManageError);
      assert.equal(issuer.calls, 3);
      assert.deepEqual(failed.sort(), names);
      for (const name of names) {
        const status = keeper.status(name);
        assert.equal(status.lastError?.code, 'ERR_STORAGE');
        assert.equal(status.failures, 1);
      }
    } finally {
      await keeper.close();
    }
  });
});
