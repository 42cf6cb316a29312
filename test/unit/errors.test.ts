import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { AcmeProblemError, CertKeeperError, ERROR_CODES, InvalidNameError, ManageError } from '../../src/errors.js';

describe('errors', () => {
  it('keep code, cause and class name', () => {
    const cause = new Error('low level');
    const error = new CertKeeperError('ERR_STORAGE', 'storage failed', { cause });
    assert.equal(error.code, 'ERR_STORAGE');
    assert.equal(error.cause, cause);
    assert.equal(new InvalidNameError('x', 'bad').name, 'InvalidNameError');
    assert.ok(new InvalidNameError('x', 'bad') instanceof CertKeeperError);
  });

  it('keep an RFC 8555 problem as type/status/detail/subproblems/identifier', () => {
    const error = new AcmeProblemError({
      type: 'urn:ietf:params:acme:error:rejectedIdentifier',
      status: 400,
      detail: 'blocked',
      subproblems: [{ type: 'urn:ietf:params:acme:error:caa', identifier: { type: 'dns', value: 'a.test' } }],
      identifier: { type: 'dns', value: 'a.test' },
    });
    assert.equal(error.code, 'ERR_ACME_PROBLEM');
    assert.equal(error.shortType, 'rejectedIdentifier');
    assert.equal(error.status, 400);
    assert.equal(error.subproblems.length, 1);
    assert.match(error.message, /rejectedIdentifier for a\.test \(HTTP 400\): blocked/);
  });

  it('list every failed name in a ManageError', () => {
    const error = new ManageError([{ names: ['a.test'], error: new Error('boom') }, { names: ['b.test', 'c.test'], error: new Error('bang') }]);
    assert.match(error.message, /a\.test: boom/);
    assert.match(error.message, /b\.test, c\.test: bang/);
  });

  it('are all documented in the README table', () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    const missing = Object.keys(ERROR_CODES).filter((code) => !readme.includes(`| \`${code}\` |`));
    assert.deepEqual(missing, [], `README's error table lacks ${missing.join(', ')}`);
  });
});
