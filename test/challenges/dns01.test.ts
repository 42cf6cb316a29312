import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ChalltestsrvDnsProvider } from '../../src/dns/challtestsrv.js';
import { dnsQuery, parseDnsServer, txtValues } from '../../src/dns/query.js';
import type { DnsProvider, DnsRecord } from '../../src/dns/types.js';
import { DnsPropagationTimeoutError } from '../../src/errors.js';
import { parseIdentifier } from '../../src/names.js';
import { resolvePropagationOptions, waitForTxtRecord } from '../../src/challenges/dns-propagation.js';
import { Dns01Solver, dns01RecordName, dns01TxtValue } from '../../src/challenges/dns01.js';
import type { ChallengeContext } from '../../src/challenges/types.js';
import { FakeClock } from '../../src/testing/fake-clock.js';
import { skipUnlessInstalled } from '../helpers/system.js';
import { type ChalltestsrvProcess, startChalltestsrv } from './challtestsrv-process.js';

function challenge(name: string, token: string): ChallengeContext {
  return { identifier: parseIdentifier(name), type: 'dns-01', token, keyAuthorization: `${token}.thumbprint`, issuerKey: 'pebble' };
}

describe('DNS-01 record name and value', () => {
  test('the wildcard label is dropped from the record name', () => {
    assert.equal(dns01RecordName('*.example.test'), '_acme-challenge.example.test');
    assert.equal(dns01RecordName('example.test'), '_acme-challenge.example.test');
    assert.equal(dns01RecordName('a.b.example.test'), '_acme-challenge.a.b.example.test');
  });

  test('the value is unpadded base64url of SHA-256 of the key authorization', () => {
    // SHA-256("token.thumbprint"), computed independently with `printf %s token.thumbprint | openssl dgst -sha256 -binary | basenc --base64url`.
    assert.equal(dns01TxtValue('token.thumbprint'), '61rBZ_4knHblO0MNoxFsXZ_eTFUHum0B6IVRbhvUn5I');
  });
});

describe('propagation options', () => {
  test('invalid values throw InvalidOptionError naming the option; defaults are documented values', () => {
    const defaults = resolvePropagationOptions({});
    assert.equal(defaults.timeoutMs, 120_000);
    assert.equal(defaults.intervalMs, 2_000);
    assert.equal(defaults.skip, false);
    assert.ok(Object.isFrozen(defaults));
    assert.throws(() => resolvePropagationOptions({ timeoutMs: -1 }), { code: 'ERR_INVALID_OPTION', option: 'propagation.timeoutMs' });
    assert.throws(() => resolvePropagationOptions({ resolvers: ['x:99999'] }), { code: 'ERR_INVALID_OPTION', option: 'propagation.resolvers[0]' });
    assert.throws(() => resolvePropagationOptions({ resolvers: ['a:53'], authoritativeServers: ['b:53'] }), { code: 'ERR_INVALID_OPTION' });
    assert.throws(() => new Dns01Solver({ provider: {} as DnsProvider }), { code: 'ERR_INVALID_OPTION', option: 'dns01.provider' });
  });

  test('an IP identifier is refused before the provider is called', async () => {
    const calls: string[] = [];
    const provider: DnsProvider = {
      name: 'recording',
      addTxtRecord: async (r) => void calls.push(`add ${r.name}`),
      removeTxtRecord: async (r) => void calls.push(`remove ${r.name}`),
    };
    const solver = new Dns01Solver({ provider, followCname: false });
    await assert.rejects(solver.present(challenge('192.0.2.1', 'tokenIp')), { code: 'ERR_CHALLENGE_FAILED' });
    await solver.cleanUp(challenge('192.0.2.1', 'tokenIp'));
    assert.deepEqual(calls, []);
  });
});

const skip = skipUnlessInstalled('pebble-challtestsrv');

describe('DNS-01 against pebble-challtestsrv', { skip }, () => {
  let chall: ChalltestsrvProcess;
  let provider: ChalltestsrvDnsProvider;

  before(async () => {
    chall = await startChalltestsrv();
    provider = new ChalltestsrvDnsProvider({ managementUrl: chall.managementUrl });
  });
  after(() => chall?.stop());

  async function txt(name: string): Promise<string[]> {
    return txtValues(await dnsQuery(parseDnsServer(chall.dnsServer), name, 'TXT'), name).sort();
  }

  test('the provider holds two values at one name; removing one never empties the name while the other is live', async () => {
    const name = '_acme-challenge.pair.example.test';
    const a: DnsRecord = { name, value: 'value-a', ttl: 60 };
    const b: DnsRecord = { name, value: 'value-b', ttl: 60 };
    await provider.addTxtRecord(a);
    await provider.addTxtRecord(b);
    assert.deepEqual(await txt(name), ['value-a', 'value-b']);
    await provider.removeTxtRecord(a);
    assert.ok((await txt(name)).includes('value-b'), 'b is still served after a is removed');
    await provider.removeTxtRecord(b);
    assert.deepEqual(await txt(name), [], 'the name is cleared once its last value is removed');
  });

  test('a management API that is down gives ERR_DNS_PROVIDER', async () => {
    const dead = new ChalltestsrvDnsProvider({ managementUrl: 'http://127.0.0.1:1', timeoutMs: 2_000 });
    await assert.rejects(dead.addTxtRecord({ name: '_acme-challenge.x.test', value: 'v', ttl: 60 }), { code: 'ERR_DNS_PROVIDER' });
  });

  test('wildcard and apex: two values at once, each waited for, each cleaned up', async () => {
    const solver = new Dns01Solver({ provider, propagation: { resolvers: [chall.dnsServer], intervalMs: 50, timeoutMs: 5_000 } });
    const wildcard = challenge('*.wild.example.test', 'tokenWild');
    const apex = challenge('wild.example.test', 'tokenApex');
    await Promise.all([solver.present(wildcard), solver.present(apex)]);
    await Promise.all([solver.wait(wildcard), solver.wait(apex)]);
    const name = '_acme-challenge.wild.example.test';
    assert.deepEqual(await txt(name), [dns01TxtValue('tokenApex.thumbprint'), dns01TxtValue('tokenWild.thumbprint')].sort());
    await solver.cleanUp(wildcard);
    assert.ok((await txt(name)).includes(dns01TxtValue('tokenApex.thumbprint')));
    await solver.cleanUp(apex);
    assert.deepEqual(await txt(name), []);
  });

  test('a CNAME at _acme-challenge.<name> moves the record to its target', async () => {
    await chall.post('/set-cname', { host: '_acme-challenge.deleg.example.test.', target: 'deleg.acme.test.' });
    const solver = new Dns01Solver({ provider, propagation: { resolvers: [chall.dnsServer], intervalMs: 50, timeoutMs: 5_000 } });
    const ch = challenge('deleg.example.test', 'tokenDeleg');
    try {
      await solver.present(ch);
      await solver.wait(ch);
      assert.deepEqual(await txt('deleg.acme.test'), [dns01TxtValue('tokenDeleg.thumbprint')]);
      await solver.cleanUp(ch);
      assert.deepEqual(await txt('deleg.acme.test'), []);
    } finally {
      await chall.post('/clear-cname', { host: '_acme-challenge.deleg.example.test.' });
    }
  });

  test('the check keeps polling until a value that appears later is visible', async () => {
    const clock = new FakeClock();
    const options = resolvePropagationOptions({ resolvers: [chall.dnsServer], intervalMs: 2_000, timeoutMs: 60_000 });
    const name = '_acme-challenge.later.example.test';
    let done = false;
    const pending = waitForTxtRecord(name, 'late-value', options, { clock }).then(() => (done = true));
    // Wait until the first round has found nothing and the check sleeps on the clock.
    while (clock.pendingTimers === 0) await new Promise((r) => setTimeout(r, 5));
    assert.equal(done, false);
    await chall.post('/set-txt', { host: `${name}.`, value: 'late-value' });
    try {
      for (let i = 0; i < 100 && !done; i++) {
        await clock.advance(2_000);
        await new Promise((r) => setTimeout(r, 10));
      }
      await pending;
      assert.equal(done, true);
    } finally {
      await chall.post('/clear-txt', { host: `${name}.` });
    }
  });

  test('a value that never appears: DnsPropagationTimeoutError naming the resolver, driven by an injected clock', async () => {
    const clock = new FakeClock();
    const options = resolvePropagationOptions({ resolvers: [chall.dnsServer], intervalMs: 2_000, timeoutMs: 10_000 });
    let settled: unknown;
    const pending = waitForTxtRecord('_acme-challenge.never.example.test', 'missing', options, { clock }).then(
      () => (settled = 'resolved'),
      (error: unknown) => (settled = error),
    );
    // Each advance lets one round of real queries finish, then moves fake time past the pause.
    for (let i = 0; i < 100 && settled === undefined; i++) {
      await new Promise((r) => setTimeout(r, 10));
      await clock.advance(2_000);
    }
    await pending;
    assert.ok(settled instanceof DnsPropagationTimeoutError, `expected a timeout error, got ${String(settled)}`);
    assert.deepEqual(settled.missingOn, [chall.dnsServer]);
    assert.equal(settled.code, 'ERR_DNS_PROPAGATION_TIMEOUT');
    assert.ok(clock.now() - Date.UTC(2026, 0, 1) >= 10_000, 'gave up only after the configured timeout of clock time');
  });

  test('aborting the wait ends it with ERR_ABORTED', async () => {
    const options = resolvePropagationOptions({ resolvers: [chall.dnsServer], intervalMs: 60_000, timeoutMs: 120_000 });
    const controller = new AbortController();
    const pending = waitForTxtRecord('_acme-challenge.never.example.test', 'missing', options, { signal: controller.signal });
    setTimeout(() => controller.abort(), 50);
    await assert.rejects(pending, { code: 'ERR_ABORTED' });
  });

  test('skip: true makes wait() return without querying', async () => {
    const solver = new Dns01Solver({ provider, propagation: { resolvers: ['127.0.0.1:1'], skip: true } });
    const ch = challenge('skip.example.test', 'tokenSkip');
    await solver.present(ch);
    try {
      await solver.wait(ch);
    } finally {
      await solver.cleanUp(ch);
    }
  });
});
