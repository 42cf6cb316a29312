/**
 * parseIdentifier's one-regex path for plain lowercase names must agree with the full checks. A trailing dot
 * (or an uppercase letter) sends the same name through the full path, which is the reference here.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InvalidNameError } from '../../src/errors.js';
import { parseIdentifier } from '../../src/names.js';

function full(name: string): ReturnType<typeof parseIdentifier> | 'invalid' {
  try {
    return parseIdentifier(`${name}.`);
  } catch (error) {
    assert.ok(error instanceof InvalidNameError);
    return 'invalid';
  }
}

function fast(name: string): ReturnType<typeof parseIdentifier> | 'invalid' {
  try {
    return parseIdentifier(name);
  } catch (error) {
    assert.ok(error instanceof InvalidNameError);
    return 'invalid';
  }
}

describe('parseIdentifier, plain names', () => {
  it('gives the full checks\' answer for plain and nearly plain names', () => {
    const long = 'a'.repeat(63);
    const names = [
      'example.com', 'n0.bench.test', 'localhost', 'a', 'a-b.c', 'a--b.example', '0.example', '1a.2b.c3',
      `${long}.example`, `${'a'.repeat(64)}.example`, `${long}.${long}.${long}.${'a'.repeat(61)}`, `${long}.${long}.${long}.${'a'.repeat(62)}`,
      'xn--mnchen-3ya.example', 'a.xn--mnchen-3ya', 'xn--abc.example', 'xn--.example', 'ab--cd.example',
      '-a.example', 'a-.example', 'a.-b', 'example.123', 'example.0x1f', 'example.0x', 'a..b', '.a',
      'a.b1', 'a.1b', 'exa_mple.com', 'a.b.c.d.e.f.g',
    ];
    for (const name of names) assert.deepEqual(fast(name), full(name), name);
  });

  it('returns the name itself for a plain name', () => {
    assert.deepEqual(parseIdentifier('n123.bench.test'), { type: 'dns', value: 'n123.bench.test', wildcard: false });
  });
});
