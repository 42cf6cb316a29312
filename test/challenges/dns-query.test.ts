import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { after, before, describe, test } from 'node:test';
import * as packet from 'dns-packet';
import { DnsQueryError, DnsPropagationTimeoutError } from '../../src/errors.js';
import { authoritativeServers, dnsQuery, findZone, parseDnsServer, resolveCname, txtValues } from '../../src/dns/query.js';
import { resolvePropagationOptions, waitForTxtRecord } from '../../src/challenges/dns-propagation.js';
import { type BindHandle, startBind } from '../helpers/bind.js';
import { skipUnlessInstalled } from '../helpers/system.js';

describe('parseDnsServer', () => {
  test('host:port, [v6]:port, bare host; bad input names the option', () => {
    assert.deepEqual(parseDnsServer('127.0.0.1:8053'), { host: '127.0.0.1', port: 8053 });
    assert.deepEqual(parseDnsServer('[::1]:53'), { host: '::1', port: 53 });
    assert.deepEqual(parseDnsServer('::1'), { host: '::1', port: 53 });
    assert.deepEqual(parseDnsServer('ns1.example.test'), { host: 'ns1.example.test', port: 53 });
    assert.throws(() => parseDnsServer('127.0.0.1:0', 'resolvers[0]'), { code: 'ERR_INVALID_OPTION', option: 'resolvers[0]' });
    assert.throws(() => parseDnsServer('127.0.0.1:x'), { code: 'ERR_INVALID_OPTION' });
    assert.throws(() => parseDnsServer(''), { code: 'ERR_INVALID_OPTION' });
  });
});

describe('dnsQuery against a scripted UDP server', () => {
  let server: dgram.Socket;
  let port: number;
  /** What the server does with each query. */
  let behaviour: 'wrong-id-then-right' | 'only-wrong-id' | 'wrong-question' | 'servfail' = 'wrong-id-then-right';

  before(async () => {
    server = dgram.createSocket('udp4');
    server.on('message', (msg, rinfo) => {
      const query = packet.decode(msg);
      const question = query.questions?.[0];
      if (!question) return;
      const answer: packet.Answer = { type: 'TXT', name: question.name, ttl: 0, data: 'real' };
      const reply = (id: number, questionName = question.name, rcode = 0): Buffer =>
        packet.encode({ type: 'response', id, flags: packet.AUTHORITATIVE_ANSWER | rcode, questions: [{ ...question, name: questionName }], answers: rcode ? [] : [{ ...answer, name: questionName }] });
      const id = query.id ?? 0;
      const send = (buf: Buffer): void => void server.send(buf, rinfo.port, rinfo.address);
      if (behaviour === 'servfail') send(reply(id, question.name, 2));
      else if (behaviour === 'wrong-question') send(reply(id, `other.${question.name}`));
      else {
        send(Buffer.from('not dns'));
        send(reply((id + 1) & 0xffff));
        if (behaviour === 'wrong-id-then-right') send(reply(id));
      }
    });
    await new Promise<void>((resolve) => server.bind(0, '127.0.0.1', resolve));
    port = server.address().port;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  test('ignores garbage and replies with the wrong ID, and takes the real reply', async () => {
    behaviour = 'wrong-id-then-right';
    const result = await dnsQuery({ host: '127.0.0.1', port }, 'x.example.test', 'TXT', { timeoutMs: 2_000 });
    assert.deepEqual(txtValues(result, 'x.example.test'), ['real']);
    assert.equal(result.authoritative, true);
  });

  test('only wrong IDs: times out with a typed error', async () => {
    behaviour = 'only-wrong-id';
    await assert.rejects(dnsQuery({ host: '127.0.0.1', port }, 'x.example.test', 'TXT', { timeoutMs: 200 }), (error: unknown) => {
      assert.ok(error instanceof DnsQueryError);
      assert.equal(error.reason, 'timeout');
      assert.equal(error.server, `127.0.0.1:${port}`);
      return true;
    });
  });

  test('a reply for another question is not accepted', async () => {
    behaviour = 'wrong-question';
    await assert.rejects(dnsQuery({ host: '127.0.0.1', port }, 'x.example.test', 'TXT', { timeoutMs: 200 }), { code: 'ERR_DNS_QUERY', reason: 'timeout' });
  });

  test('SERVFAIL is a typed error carrying the rcode', async () => {
    behaviour = 'servfail';
    await assert.rejects(dnsQuery({ host: '127.0.0.1', port }, 'x.example.test', 'TXT', { timeoutMs: 2_000 }), { code: 'ERR_DNS_QUERY', reason: 'rcode', rcode: 'SERVFAIL' });
  });

  test('an aborted signal ends the query with ERR_ABORTED', async () => {
    behaviour = 'only-wrong-id';
    const controller = new AbortController();
    const pending = dnsQuery({ host: '127.0.0.1', port }, 'x.example.test', 'TXT', { timeoutMs: 10_000, signal: controller.signal });
    controller.abort();
    await assert.rejects(pending, { code: 'ERR_ABORTED' });
  });
});

const skipBind = skipUnlessInstalled('named', 'dig');

describe('DNS lookups against BIND9', { skip: skipBind }, () => {
  let bind: BindHandle;
  const bigValues = Array.from({ length: 12 }, (_, i) => `${String(i).padStart(2, '0')}${'x'.repeat(198)}`);

  before(async () => {
    bind = await startBind({
      zones: [
        {
          name: 'example.test',
          records: [
            '_acme-challenge.static IN TXT "abc"',
            '_acme-challenge.app IN CNAME app.acme.test.',
            ...bigValues.map((v) => `big IN TXT "${v}"`),
          ],
        },
        { name: 'acme.test', records: ['app IN TXT "delegated"'] },
      ],
    });
    // named logs "running" slightly before its UDP listener answers when the machine is busy: wait until it does.
    for (let attempt = 0; ; attempt++) {
      try {
        await dnsQuery({ host: '127.0.0.1', port: bind.port }, 'example.test', 'SOA', { timeoutMs: 1_000 });
        break;
      } catch (error) {
        if (attempt >= 50) throw error;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  });
  after(() => bind?.stop());

  const server = (): { host: string; port: number } => ({ host: '127.0.0.1', port: bind.port });

  test('reads TXT values from an authoritative server', async () => {
    const result = await dnsQuery(server(), '_acme-challenge.static.example.test', 'TXT');
    assert.equal(result.rcode, 'NOERROR');
    assert.equal(result.authoritative, true);
    assert.deepEqual(txtValues(result, '_acme-challenge.static.example.test'), ['abc']);
  });

  test('NXDOMAIN is a result with the zone SOA in authority, not an error', async () => {
    const result = await dnsQuery(server(), 'missing.example.test', 'TXT');
    assert.equal(result.rcode, 'NXDOMAIN');
    assert.equal(result.answers.length, 0);
    assert.ok(result.authorities.some((a) => a.type === 'SOA' && a.name === 'example.test'));
  });

  test('a reply too large for UDP is fetched again over TCP', async () => {
    const result = await dnsQuery(server(), 'big.example.test', 'TXT');
    assert.deepEqual(txtValues(result, 'big.example.test').sort(), bigValues);
  });

  test('findZone walks up to the zone apex', async () => {
    assert.equal(await findZone('_acme-challenge.deep.er.example.test', [server()]), 'example.test');
    assert.equal(await findZone('example.test.', [server()]), 'example.test');
    assert.equal(await findZone('app.acme.test', [server()]), 'acme.test');
  });

  test('authoritativeServers returns each NS with its address and the given port', async () => {
    const servers = await authoritativeServers('example.test', [server()], { port: bind.port });
    assert.deepEqual(servers, [{ name: 'ns1.example.test', host: '127.0.0.1', port: bind.port }]);
  });

  test('resolveCname follows a delegation and returns a plain name unchanged', async () => {
    assert.equal(await resolveCname('_acme-challenge.app.example.test', [server()]), 'app.acme.test');
    assert.equal(await resolveCname('_acme-challenge.static.example.test', [server()]), '_acme-challenge.static.example.test');
  });

  test('propagation check discovers the authoritative servers (SOA, NS, A) and sees the value', async () => {
    const options = resolvePropagationOptions({ lookupResolvers: [bind.server], authoritativePort: bind.port, intervalMs: 50, timeoutMs: 5_000 });
    await waitForTxtRecord('_acme-challenge.static.example.test', 'abc', options);
  });

  test('propagation check times out naming the authoritative server that lacks the value', async () => {
    const options = resolvePropagationOptions({ lookupResolvers: [bind.server], authoritativePort: bind.port, intervalMs: 50, timeoutMs: 300 });
    await assert.rejects(waitForTxtRecord('_acme-challenge.static.example.test', 'not-there', options), (error: unknown) => {
      assert.ok(error instanceof DnsPropagationTimeoutError);
      assert.deepEqual(error.missingOn, [bind.server]);
      assert.equal(error.recordName, '_acme-challenge.static.example.test');
      return true;
    });
  });
});
