/**
 * Names that a browser's URL parser reads as something else (WHATWG host parsing turns `0x7f000001` into
 * 127.0.0.1) and A-labels that are not valid punycode/IDNA must never be accepted as DNS names: they would
 * reach decide(), the CA and storage under a name that means another host, or no host at all.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InvalidNameError } from '../../src/errors.js';
import { normalizeName, normalizeServerName, parseIdentifier } from '../../src/names.js';

const rejected: Array<[input: string, why: RegExp]> = [
  // Non-canonical IPv4: hex, octal, fewer parts, last label numeric.
  ['0x7f000001', /IPv4/],
  ['0X7F000001', /IPv4/],
  ['127.0.0.0x1', /IPv4/],
  ['0x7f.1', /IPv4/],
  ['0177.0.0.1', /IPv4/],
  ['127.000.0.1', /IPv4/],
  ['127.1', /IPv4/],
  ['2130706433', /IPv4/],
  ['0x', /IPv4/],
  ['a.0x', /IPv4/],
  ['example.0x1f', /IPv4/],
  ['foo.09', /IPv4/],
  ['www.example.123', /IPv4/],
  ['*.example.0x10', /IPv4/],
  ['0x7f000001.', /IPv4/],
  // A-labels that do not decode, or decode to something that does not encode back to them.
  ['xn--zz', /A-label/],
  ['xn--zz.example.test', /A-label/],
  ['xn--', /A-label|inner hyphens/],
  ['xn--a.example.test', /A-label/],
  ['xn--ab-.example.test', /A-label|inner hyphens/], // would decode to plain "ab": not an A-label of anything
  ['xn--munchen-gie.example.test', /A-label/], // "mu" + combining diaeresis + "nchen": not in NFC
  ['xn--abc-cec.example.test', /A-label/], // starts with a combining mark
  ['xn--ab-m1t.example.test', /A-label/], // a zero-width joiner outside its allowed context
  ['xn--ass.example.test', /A-label/],
  ['xn--a-ecp.example.test', /A-label/],
  ['*.xn--zz.example.test', /A-label/],
  // Valid punycode, but the U-label is not a valid IDNA2008 label (symbols, emoji).
  ['xn--1ch.example.test', /A-label/], // ≠
  ['xn--ls8h.example.test', /A-label/], // 💩
  ['💩.example.test', /A-label|internationalised/],
];

const accepted: Array<[input: string, value: string]> = [
  ['xn--bcher-kva.example.test', 'xn--bcher-kva.example.test'],
  ['XN--BCHER-KVA.Example.Test', 'xn--bcher-kva.example.test'],
  ['bücher.example.test', 'xn--bcher-kva.example.test'],
  ['xn--55qx5d.example.test', 'xn--55qx5d.example.test'], // 公司
  ['xn--hxajbheg2az3al.example.test', 'xn--hxajbheg2az3al.example.test'], // παράδειγμα
  ['*.xn--mnchen-3ya.example.test', '*.xn--mnchen-3ya.example.test'],
  ['a.0xg', 'a.0xg'], // not a number: "0xg" is not hex
  ['0x7f000001.example.test', '0x7f000001.example.test'], // only the last label makes a host an IPv4 address
  ['127.0.0.1.example.test', '127.0.0.1.example.test'],
  ['ab--cd.example.test', 'ab--cd.example.test'],
];

describe('names a URL parser reads differently are rejected', () => {
  for (const [input, why] of rejected) {
    it(`rejects ${JSON.stringify(input)}`, () => {
      assert.throws(() => parseIdentifier(input), (e: unknown) => {
        assert.ok(e instanceof InvalidNameError, `${String(e)}`);
        assert.equal(e.code, 'ERR_INVALID_NAME');
        assert.match(e.message, why);
        return true;
      });
      if (!input.startsWith('*.') && /^[\x00-\x7f]*$/.test(input)) assert.throws(() => normalizeServerName(input), InvalidNameError);
    });
  }

  for (const [input, value] of accepted) {
    it(`accepts ${JSON.stringify(input)} as ${value}`, () => {
      assert.equal(normalizeName(input), value);
    });
  }

  it('canonical IPv4 and IPv6 literals stay IP identifiers, and are no SNI server names', () => {
    assert.deepEqual(parseIdentifier('127.0.0.1'), { type: 'ip', value: '127.0.0.1', wildcard: false });
    assert.equal(parseIdentifier('[::1]').type, 'ip');
    for (const ip of ['127.0.0.1', '::1', '[::1]', '0x7f000001', '127.1']) assert.throws(() => normalizeServerName(ip), InvalidNameError, ip);
  });
});
