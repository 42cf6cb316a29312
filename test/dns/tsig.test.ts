import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { inspect } from 'node:util';
import * as packet from 'dns-packet';
import { InvalidOptionError } from '../../src/errors.js';
import { findTsigRecord, parseTsigKeyFile, signMessage, TsigKey } from '../../src/dns/tsig.js';

test('parseTsigKeyFile reads the tsig-keygen format, comments and several keys', () => {
  const text = [
    '# made by tsig-keygen',
    'key "First.Key." {',
    '\talgorithm hmac-sha512;',
    '\tsecret "ab//cd+e/f==";',
    '};',
    '/* a second one */',
    'key second { algorithm HMAC-SHA1; secret "Zm9v"; }; // trailing comment',
  ].join('\n');
  assert.deepEqual(parseTsigKeyFile(text), [
    { name: 'first.key', algorithm: 'hmac-sha512', secret: 'ab//cd+e/f==' },
    { name: 'second', algorithm: 'hmac-sha1', secret: 'Zm9v' },
  ]);
});

test('parseTsigKeyFile rejects files without a usable key and never quotes the secret', () => {
  assert.throws(() => parseTsigKeyFile('nothing here'), InvalidOptionError);
  assert.throws(
    () => parseTsigKeyFile('key "k" { algorithm hmac-md5; secret "c2VjcmV0c2VjcmV0"; };'),
    (e: unknown) => e instanceof InvalidOptionError && /algorithm/.test(e.message) && !e.message.includes('c2VjcmV0c2VjcmV0'),
  );
  assert.throws(() => parseTsigKeyFile('key "k" { algorithm hmac-sha256; };'), /no secret/);
});

test('TsigKey hides its secret from inspect, JSON and enumeration', () => {
  const secret = randomBytes(32).toString('base64');
  const key = new TsigKey('k', 'hmac-sha256', secret);
  for (const text of [inspect(key), inspect(key, { showHidden: true }), JSON.stringify(key), String(Object.entries(key))]) {
    assert.ok(!text.includes(secret));
  }
  assert.match(inspect(key), /redacted/);
});

test('signMessage appends one TSIG record that findTsigRecord reads back', () => {
  const key = new TsigKey('Key.Example.', 'hmac-sha512', randomBytes(64).toString('base64'));
  const message = packet.encode({ type: 'query', id: 4242, questions: [{ type: 'SOA', name: 'example.test' }] });
  const signed = signMessage(message, key, 1_700_000_000.7);
  assert.equal(signed.message.readUInt16BE(10), 1, 'ARCOUNT incremented');
  assert.equal(signed.mac.length, 64);
  const record = findTsigRecord(signed.message);
  assert.ok(record);
  assert.equal(record.keyName, 'key.example');
  assert.equal(record.algorithm, 'hmac-sha512');
  assert.equal(record.timeSigned, 1_700_000_000);
  assert.equal(record.fudge, 300);
  assert.equal(record.originalId, 4242);
  assert.equal(record.error, 0);
  assert.deepEqual(record.mac, signed.mac);
  assert.equal(record.offset, message.length);
  // Same input, same MAC; another key, another MAC.
  assert.deepEqual(signMessage(message, key, 1_700_000_000).mac, signed.mac);
  const other = new TsigKey('key.example', 'hmac-sha512', randomBytes(64).toString('base64'));
  assert.notDeepEqual(signMessage(message, other, 1_700_000_000).mac, signed.mac);
});
