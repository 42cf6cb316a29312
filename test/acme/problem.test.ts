import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AcmeNetworkError, parseRetryAfter, problemFromResponse, toAcmeError } from '../../src/acme/problem.js';
import { AcmeProblemError, AcmeUnreachableError } from '../../src/errors.js';

const NOW = Date.UTC(2026, 0, 1, 12, 0, 0);

describe('Retry-After parsing', () => {
  it('reads delta-seconds', () => {
    assert.equal(parseRetryAfter('120', NOW), 120_000);
    assert.equal(parseRetryAfter(' 0 ', NOW), 0);
    assert.equal(parseRetryAfter(['30'], NOW), 30_000);
  });
  it('reads an HTTP date relative to now, never negative', () => {
    assert.equal(parseRetryAfter('Thu, 01 Jan 2026 12:01:30 GMT', NOW), 90_000);
    assert.equal(parseRetryAfter('Thu, 01 Jan 2026 11:00:00 GMT', NOW), 0);
  });
  it('ignores absent or unparsable values', () => {
    assert.equal(parseRetryAfter(undefined, NOW), undefined);
    assert.equal(parseRetryAfter('', NOW), undefined);
    assert.equal(parseRetryAfter('soon', NOW), undefined);
  });
});

describe('problem mapping', () => {
  it('keeps type, status, detail, subproblems, identifier and Retry-After', () => {
    const error = problemFromResponse(
      {
        status: 429,
        headers: { 'retry-after': '7' },
        data: {
          type: 'urn:ietf:params:acme:error:rateLimited',
          detail: 'too many certificates',
          subproblems: [
            { type: 'urn:ietf:params:acme:error:rejectedIdentifier', detail: 'no', identifier: { type: 'dns', value: 'x.test' } },
            'junk',
          ],
        },
      },
      'https://ca.test/new-order',
      NOW,
    );
    assert.ok(error instanceof AcmeProblemError);
    assert.equal(error.code, 'ERR_ACME_PROBLEM');
    assert.equal(error.type, 'urn:ietf:params:acme:error:rateLimited');
    assert.equal(error.shortType, 'rateLimited');
    assert.equal(error.status, 429);
    assert.equal(error.detail, 'too many certificates');
    assert.equal(error.retryAfterMs, 7000);
    assert.equal(error.url, 'https://ca.test/new-order');
    assert.deepEqual(error.subproblems, [
      { type: 'urn:ietf:params:acme:error:rejectedIdentifier', detail: 'no', identifier: { type: 'dns', value: 'x.test' } },
    ]);
  });

  it('takes Retry-After as an HTTP date and a problem sent as text', () => {
    const error = problemFromResponse(
      {
        status: 503,
        headers: { 'retry-after': 'Thu, 01 Jan 2026 12:00:10 GMT' },
        data: JSON.stringify({ type: 'urn:ietf:params:acme:error:serverInternal', detail: 'busy', identifier: { type: 'dns', value: 'a.test' } }),
      },
      undefined,
      NOW,
    );
    assert.equal(error.retryAfterMs, 10_000);
    assert.equal(error.shortType, 'serverInternal');
    assert.deepEqual(error.identifier, { type: 'dns', value: 'a.test' });
  });

  it('gives a non-problem error body a generic type and the HTTP status', () => {
    const error = problemFromResponse({ status: 502, headers: {}, data: '<html>bad gateway</html>' }, undefined, NOW);
    assert.equal(error.type, 'about:blank');
    assert.equal(error.status, 502);
  });

  it('maps refused connections, DNS failures, timeouts and TLS errors to AcmeUnreachableError', () => {
    for (const code of ['ECONNREFUSED', 'ENOTFOUND', 'ECONNABORTED', 'ETIMEDOUT', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'ERR_TLS_CERT_ALTNAME_INVALID']) {
      const cause = Object.assign(new Error(`x ${code}`), { code });
      const mapped = toAcmeError(cause, 'https://ca.test/dir', NOW);
      assert.ok(mapped instanceof AcmeUnreachableError, code);
      assert.ok(mapped instanceof AcmeNetworkError);
      assert.equal(mapped.networkCode, code);
      assert.equal(mapped.cause, cause);
      assert.match(mapped.message, /https:\/\/ca\.test/);
    }
    const tls = toAcmeError(Object.assign(new Error('t'), { code: 'SELF_SIGNED_CERT_IN_CHAIN' }), undefined, NOW) as AcmeNetworkError;
    assert.equal(tls.transient, false, 'a TLS trust failure is not retried');
    const refused = toAcmeError(Object.assign(new Error('t'), { code: 'ECONNREFUSED' }), undefined, NOW) as AcmeNetworkError;
    assert.equal(refused.transient, true);
  });

  it('maps an axios error carrying a response to AcmeProblemError and leaves unknown errors alone', () => {
    const axiosLike = Object.assign(new Error('Request failed'), {
      response: { status: 400, headers: {}, data: { type: 'urn:ietf:params:acme:error:malformed', detail: 'bad' } },
    });
    const mapped = toAcmeError(axiosLike, 'https://ca.test/x', NOW);
    assert.ok(mapped instanceof AcmeProblemError);
    assert.equal(mapped.shortType, 'malformed');
    const other = new TypeError('bug');
    assert.equal(toAcmeError(other, undefined, NOW), other);
  });
});
