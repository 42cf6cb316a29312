import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { inspect } from 'node:util';
import { pino } from 'pino';
import { DnsProviderError, InvalidOptionError } from '../../src/errors.js';
import type { Logger } from '../../src/logger.js';
import { parseTxtContent, PowerDnsProvider, quoteTxt } from '../../src/dns/powerdns.js';
import { startPowerDns, type PowerDnsHandle } from '../helpers/pdns.js';
import { skipUnlessInstalled } from '../helpers/system.js';

const skip = skipUnlessInstalled('pdns_server', 'dig');

describe('PowerDnsProvider against PowerDNS (sqlite backend)', { skip }, () => {
  let pdns: PowerDnsHandle;

  before(async () => {
    pdns = await startPowerDns({ zones: ['example.test', 'sub.example.test'] });
  });

  after(async () => {
    await pdns?.stop();
  });

  test('adds and removes values while preserving other TXT values at the name', async () => {
    const name = '_acme-challenge.example.test';
    // A value someone else put there, which must survive.
    await pdns.api('PATCH', '/servers/localhost/zones/example.test.', {
      rrsets: [{ name: `${name}.`, type: 'TXT', ttl: 120, changetype: 'REPLACE', records: [{ content: '"v=foreign"', disabled: false }] }],
    });
    const lines: string[] = [];
    const logger = pino({ level: 'trace' }, { write: (l: string) => void lines.push(l) }) as unknown as Logger;
    const provider = new PowerDnsProvider({ apiUrl: pdns.apiUrl, apiKey: pdns.apiKey, logger });

    // Wildcard and apex values written at the same moment: neither may be lost.
    await Promise.all([
      provider.addTxtRecord({ name, value: 'token-wildcard', ttl: 60 }),
      provider.addTxtRecord({ name, value: 'token-apex', ttl: 60 }),
    ]);
    assert.deepEqual(await pdns.txt(name), ['token-apex', 'token-wildcard', 'v=foreign']);
    // Adding a value that is there already changes nothing.
    await provider.addTxtRecord({ name, value: 'token-apex', ttl: 60 });
    assert.deepEqual(await pdns.txt(name), ['token-apex', 'token-wildcard', 'v=foreign']);

    await provider.removeTxtRecord({ name, value: 'token-wildcard', ttl: 60 });
    assert.deepEqual(await pdns.txt(name), ['token-apex', 'v=foreign']);
    await provider.removeTxtRecord({ name, value: 'token-apex', ttl: 60 });
    assert.deepEqual(await pdns.txt(name), ['v=foreign']);
    for (const line of lines) assert.ok(!line.includes(pdns.apiKey), 'API key leaked into a log line');
  });

  test('deletes the RRset when its last value goes, and picks the longest zone', async () => {
    const provider = new PowerDnsProvider({ apiUrl: `${pdns.apiUrl}/api/v1/`, apiKey: pdns.apiKey });
    const name = '_acme-challenge.www.sub.example.test';
    await provider.addTxtRecord({ name, value: 'only', ttl: 60 });
    assert.deepEqual(await pdns.txt(name), ['only']);
    const zone = (await pdns.api('GET', '/servers/localhost/zones/sub.example.test.?rrsets=true')) as { rrsets: { name: string; type: string }[] };
    assert.ok(zone.rrsets.some((r) => r.name === `${name}.` && r.type === 'TXT'), 'record written in sub.example.test');
    await provider.removeTxtRecord({ name, value: 'only', ttl: 60 });
    assert.deepEqual(await pdns.txt(name), []);
    // Removing again is fine (cleanup may run twice).
    await provider.removeTxtRecord({ name, value: 'only', ttl: 60 });
  });

  test('a wrong API key is a typed error with the HTTP status and without the key', async () => {
    const wrongKey = 'wrong-key-0123456789';
    const provider = new PowerDnsProvider({ apiUrl: pdns.apiUrl, apiKey: wrongKey, zone: 'example.test' });
    const error = await provider.addTxtRecord({ name: '_acme-challenge.example.test', value: 'x', ttl: 60 }).then(
      () => assert.fail('expected an error'),
      (e: unknown) => e,
    );
    assert.ok(error instanceof DnsProviderError);
    assert.equal(error.reason, 'HTTP 401');
    assert.match(error.message, /API key was rejected/);
    for (const text of [error.message, inspect(error), inspect(provider), JSON.stringify(provider)]) assert.ok(!text.includes(wrongKey));
  });

  test('a zone the server lacks is a typed error', async () => {
    const provider = new PowerDnsProvider({ apiUrl: pdns.apiUrl, apiKey: pdns.apiKey });
    await assert.rejects(provider.addTxtRecord({ name: '_acme-challenge.nowhere.test', value: 'x', ttl: 60 }), { reason: 'ZONE_NOT_FOUND' });
    const pinned = new PowerDnsProvider({ apiUrl: pdns.apiUrl, apiKey: pdns.apiKey, zone: 'nowhere.test' });
    await assert.rejects(pinned.addTxtRecord({ name: '_acme-challenge.nowhere.test', value: 'x', ttl: 60 }), (e: unknown) => {
      assert.ok(e instanceof DnsProviderError);
      assert.equal(e.reason, 'HTTP 404');
      return true;
    });
  });
});

describe('PowerDnsProvider without a server', () => {
  test('an unreachable API is a NETWORK error', async () => {
    const provider = new PowerDnsProvider({ apiUrl: 'http://127.0.0.1:1', apiKey: 'k', zone: 'example.test' });
    await assert.rejects(provider.addTxtRecord({ name: '_acme-challenge.example.test', value: 'x', ttl: 60 }), { reason: 'NETWORK' });
  });

  test('options are validated, naming the option', () => {
    assert.throws(() => new PowerDnsProvider({ apiUrl: 'ftp://x', apiKey: 'k' }), (e: unknown) => e instanceof InvalidOptionError && e.option === 'apiUrl');
    assert.throws(() => new PowerDnsProvider({ apiUrl: 'http://x', apiKey: '' }), (e: unknown) => e instanceof InvalidOptionError && e.option === 'apiKey');
    assert.throws(() => new PowerDnsProvider({ apiUrl: 'http://x', apiKey: 'k', ttl: -1 }), (e: unknown) => e instanceof InvalidOptionError && e.option === 'ttl');
  });

  test('TXT content quoting round-trips, including quotes, backslashes and long values', () => {
    for (const value of ['plain', 'with "quotes" and \\ backslash', 'x'.repeat(600), 'ünï']) {
      assert.equal(parseTxtContent(quoteTxt(value)), value);
    }
    assert.equal(quoteTxt('a"b'), '"a\\"b"');
    assert.equal(quoteTxt('y'.repeat(300)).split('" "').length, 2);
    assert.equal(parseTxtContent('"ab" "cd"'), 'abcd');
    assert.equal(parseTxtContent('"\\065b"'), 'Ab');
  });
});
