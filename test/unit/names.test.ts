import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InvalidNameError } from '../../src/errors.js';
import { normalizeName, normalizeServerName, parseIdentifier, wildcardFor } from '../../src/names.js';

describe('parseIdentifier', () => {
  it('lowercases and strips one trailing dot', () => {
    assert.equal(normalizeName('WWW.Example.COM.'), 'www.example.com');
    assert.throws(() => normalizeName('example.com..'), InvalidNameError);
  });

  it('converts Unicode names to punycode', () => {
    assert.equal(normalizeName('münchen.example'), 'xn--mnchen-3ya.example');
    assert.equal(normalizeName('*.bücher.example'), '*.xn--bcher-kva.example');
  });

  it('accepts a wildcard only as the whole leftmost label', () => {
    assert.deepEqual(parseIdentifier('*.example.com'), { type: 'dns', value: '*.example.com', wildcard: true });
    for (const bad of ['a.*.example.com', '*example.com', 'f*.example.com', '*.*.example.com', '*', '*.com']) {
      assert.throws(() => parseIdentifier(bad), InvalidNameError, bad);
    }
  });

  it('enforces label and name lengths', () => {
    assert.equal(normalizeName(`${'a'.repeat(63)}.example`), `${'a'.repeat(63)}.example`);
    assert.throws(() => normalizeName(`${'a'.repeat(64)}.example`), /longer than 63/);
    const long = Array.from({ length: 50 }, () => 'abcd').join('.'); // 249 chars
    assert.equal(normalizeName(`${long}.ab`).length, 252);
    assert.throws(() => normalizeName(`${long}.abcd`), /longer than 253/);
  });

  it('recognises IP addresses as IP identifiers', () => {
    assert.deepEqual(parseIdentifier('127.0.0.1'), { type: 'ip', value: '127.0.0.1', wildcard: false });
    assert.deepEqual(parseIdentifier('[2001:DB8:0:0:0:0:0:1]'), { type: 'ip', value: '2001:db8::1', wildcard: false });
    assert.equal(parseIdentifier('::1').type, 'ip');
  });

  it('rejects every class of bad input with a typed error', () => {
    const bad = ['', '.', 'a..b', 'a/../../foo', 'b\\..\\foo', 'a\u0000b.com', 'exa mple.com', '-a.com', 'a-.com', 'a_b.com',
      'a%2e.com', 'user@host.com', 'host:443', 'x'.repeat(2000), '1.2.3', 'example.123'];
    for (const input of bad) {
      assert.throws(() => parseIdentifier(input), (e: unknown) => e instanceof InvalidNameError && e.code === 'ERR_INVALID_NAME', JSON.stringify(input));
    }
    assert.throws(() => parseIdentifier(42), InvalidNameError);
  });

  it('escapes control characters in the error message', () => {
    assert.throws(() => parseIdentifier('a\u0000b'), (e: unknown) => e instanceof InvalidNameError && !e.message.includes('\u0000') && e.message.includes('\\x00'));
  });
});

describe('normalizeServerName', () => {
  it('rejects wildcards and IPs, which are not SNI host names', () => {
    assert.equal(normalizeServerName('A.Example.Test.'), 'a.example.test');
    assert.throws(() => normalizeServerName('*.example.test'), InvalidNameError);
    assert.throws(() => normalizeServerName('127.0.0.1'), InvalidNameError);
  });
});

describe('wildcardFor', () => {
  it('replaces only the leftmost label and needs two labels below', () => {
    assert.equal(wildcardFor('a.example.com'), '*.example.com');
    assert.equal(wildcardFor('a.b.example.com'), '*.b.example.com');
    assert.equal(wildcardFor('example.com'), undefined);
    assert.equal(wildcardFor('localhost'), undefined);
  });
});
