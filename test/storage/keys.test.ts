import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { validateKey, validateLockName, validatePrefix } from '../../src/storage/keys.js';

describe('validateKey', () => {
  it('accepts ordinary keys and normalises duplicate and trailing slashes', () => {
    assert.equal(validateKey('certificates/acme-v02/example.com/example.com.crt'), 'certificates/acme-v02/example.com/example.com.crt');
    assert.equal(validateKey('a//b///c/'), 'a/b/c');
    assert.equal(validateKey('wildcard_.example.com'), 'wildcard_.example.com');
    assert.equal(validateKey('a/.hidden/..dots../x'), 'a/.hidden/..dots../x');
  });

  const rejected: [string, string][] = [
    ['', 'empty'],
    ['/', 'absolute'],
    ['//', 'absolute'],
    ['/etc/passwd', 'absolute'],
    ['a/../../foo', '".." component'],
    ['..', '".." component'],
    ['../x', '".." component'],
    ['a/..', '".." component'],
    ['./.', '"." component'],
    ['a/./b', '"." component'],
    ['.', '"." component'],
    ['b\\..\\..\\foo', 'backslash'],
    ['a\\b', 'backslash'],
    ['\0', 'control'],
    ['foo\0.crt', 'control'],
    ['a\nb', 'control'],
    ['a\u007fb', 'control'],
    ['a\u0085b', 'control'],
    ['%2e%2e', 'percent'],
    ['%2E%2E/foo', 'percent'],
    ['a/%2f/b', 'percent'],
    ['a%5c..', 'percent'],
    ['a%00b', 'percent'],
    ['C:\\Windows', 'backslash'],
    ['C:foo', 'drive'],
    ['x'.repeat(1025), 'longer'],
  ];
  for (const [key, reason] of rejected) {
    it(`rejects ${JSON.stringify(key.length > 40 ? `${key.slice(0, 10)}…` : key)} (${reason})`, () => {
      assert.throws(() => validateKey(key), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'ERR_INVALID_STORAGE_KEY');
        assert.ok(!/[\0\n]/.test(err.message), 'the message is printable');
        return true;
      });
    });
  }

  it('rejects non-strings', () => {
    assert.throws(() => validateKey(undefined), { code: 'ERR_INVALID_STORAGE_KEY' });
    assert.throws(() => validateKey(42), { code: 'ERR_INVALID_STORAGE_KEY' });
  });
});

describe('validatePrefix', () => {
  it('allows the empty prefix (the root) and otherwise validates like a key', () => {
    assert.equal(validatePrefix(''), '');
    assert.equal(validatePrefix('a//b/'), 'a/b');
    assert.throws(() => validatePrefix('../a'), { code: 'ERR_INVALID_STORAGE_KEY' });
    assert.throws(() => validatePrefix('/'), { code: 'ERR_INVALID_STORAGE_KEY' });
  });
});

describe('validateLockName', () => {
  it('accepts one component and rejects paths', () => {
    assert.equal(validateLockName('issue_cert_example.com'), 'issue_cert_example.com');
    assert.throws(() => validateLockName('a/b'), { code: 'ERR_INVALID_STORAGE_KEY' });
    assert.throws(() => validateLockName('a/'), { code: 'ERR_INVALID_STORAGE_KEY' });
    assert.throws(() => validateLockName('..'), { code: 'ERR_INVALID_STORAGE_KEY' });
  });
});
