import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import * as dnsPacket from 'dns-packet';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ChalltestsrvDnsProvider } from '../../src/dns/challtestsrv.js';
import type { DnsProvider } from '../../src/dns/types.js';
import { checkClock, checkDnsProvider, evaluateCaa, type CaaRecord, type CheckResult, type DoctorResolver } from '../../src/doctor/index.js';
import { DnsProviderError } from '../../src/errors.js';
import { parseIdentifier } from '../../src/names.js';
import { startPebble, type PebbleHandle } from '../helpers/pebble.js';
import { skipUnlessInstalled } from '../helpers/system.js';
import { runCli } from './helpers.js';

const skip = skipUnlessInstalled('pebble', 'pebble-challtestsrv');

describe('certkeeper doctor against Pebble and challtestsrv', { skip }, () => {
  let pebble: PebbleHandle;
  let dir: string;
  let env: NodeJS.ProcessEnv;

  before(async () => {
    pebble = await startPebble();
    dir = await mkdtemp(join(tmpdir(), 'certkeeper-doctor-'));
    const caRoot = join(dir, 'ca.pem');
    await writeFile(caRoot, pebble.pebbleCaPem);
    env = {
      CERTKEEPER_CA: pebble.directoryUrl,
      CERTKEEPER_CA_ROOT: caRoot,
      CERTKEEPER_AGREE_TO_TERMS: 'true',
      CERTKEEPER_STORAGE: join(dir, 'storage'),
      CERTKEEPER_HTTP_PORT: String(pebble.httpPort),
      CERTKEEPER_HTTP_HOST: '127.0.0.1',
      CERTKEEPER_TLS_ALPN_PORT: String(pebble.tlsPort),
      CERTKEEPER_TLS_ALPN_HOST: '127.0.0.1',
      CERTKEEPER_RESOLVER: pebble.challtestsrv?.dnsServer,
      CERTKEEPER_LOG_LEVEL: 'silent',
    };
    // Another CA only: this name's CAA forbids Pebble.
    await pebble.challtestsrv?.addCaa('forbidden.example.test', [{ tag: 'issue', value: 'other-ca.example' }]);
  });
  after(async () => {
    await pebble?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const find = (results: CheckResult[], check: string, subject?: string): CheckResult | undefined =>
    results.find((r) => r.check === check && (subject === undefined || r.subject === subject));

  test('one good name and one whose CAA forbids the CA: pass and fail in the table, exit 1', async () => {
    const args = ['doctor', 'good.example.test', 'forbidden.example.test', '--caa-identity', 'pebble.letsencrypt.org'];
    const json = await runCli([...args, '--json'], env);
    assert.equal(json.code, 1, json.stderr);
    const results = JSON.parse(json.stdout) as CheckResult[];
    assert.equal(find(results, 'ca-directory')?.status, 'pass');
    assert.match(find(results, 'ca-directory')?.detail ?? '', /terms of service: data:text\/plain/);
    assert.equal(find(results, 'clock')?.status, 'pass');
    assert.equal(find(results, 'storage')?.status, 'pass');
    // The test token is served by doctor's own listener and fetched through each name's A record (challtestsrv: 127.0.0.1).
    assert.equal(find(results, 'http-01', 'good.example.test')?.status, 'pass');
    assert.equal(find(results, 'http-01', 'forbidden.example.test')?.status, 'pass');
    assert.equal(find(results, 'tls-alpn-01')?.status, 'pass');
    assert.equal(find(results, 'dns-addresses', 'good.example.test')?.status, 'pass');
    assert.equal(find(results, 'caa', 'good.example.test')?.status, 'pass');
    const caa = find(results, 'caa', 'forbidden.example.test');
    assert.equal(caa?.status, 'fail');
    assert.match(caa?.detail ?? '', /allows only other-ca\.example, not pebble\.letsencrypt\.org/);
    assert.match(caa?.remedy ?? '', /issue \\"pebble\.letsencrypt\.org\\"/);
    assert.equal(results.filter((r) => r.status === 'fail').length, 1);

    const table = await runCli(args, env);
    assert.equal(table.code, 1);
    assert.match(table.stdout, /^RESULT\s+CHECK\s+SUBJECT\s+DETAIL\s+REMEDY$/m);
    assert.match(table.stdout, /^PASS\s+caa\s+good\.example\.test\s+no CAA records/m);
    assert.match(table.stdout, /^FAIL\s+caa\s+forbidden\.example\.test\s+CAA at forbidden\.example\.test allows only other-ca\.example.*add a CAA record/m);
  });

  test('only the good name: exit 0; a port taken by a server that does not answer challenges fails http-01', async () => {
    const good = await runCli(['doctor', 'good.example.test', '--caa-identity', 'pebble.letsencrypt.org'], env);
    assert.equal(good.code, 0, good.stdout + good.stderr);

    const http = await import('node:http');
    const squatter = http.createServer((_req, res) => res.writeHead(404).end());
    await new Promise<void>((resolve) => squatter.listen(0, '127.0.0.1', resolve));
    const port = (squatter.address() as import('node:net').AddressInfo).port;
    try {
      const result = await runCli(['doctor', 'good.example.test', '--json', '--http-port', String(port)], env);
      assert.equal(result.code, 1);
      const check = find(JSON.parse(result.stdout) as CheckResult[], 'http-01', 'good.example.test');
      assert.equal(check?.status, 'fail');
      assert.match(check?.detail ?? '', /HTTP 404/);
      assert.match(check?.remedy ?? '', /must answer ACME challenges/);
    } finally {
      squatter.close();
    }
  });

  test('an unreachable CA fails the directory check', async () => {
    const result = await runCli(['doctor', '--json', '--ca', 'https://127.0.0.1:1/dir'], env);
    assert.equal(result.code, 1);
    const check = find(JSON.parse(result.stdout) as CheckResult[], 'ca-directory');
    assert.equal(check?.status, 'fail');
    assert.match(check?.remedy ?? '', /--ca-root/);
  });

  test('doctor runs the DNS provider check when CERTKEEPER_DNS configures one', async () => {
    const dns = JSON.stringify({ provider: 'challtestsrv', managementUrl: pebble.challtestsrv?.managementUrl });
    const result = await runCli(['doctor', 'good.example.test', '--json', '--caa-identity', 'pebble.letsencrypt.org'], { ...env, CERTKEEPER_DNS: dns });
    assert.equal(result.code, 0, result.stdout);
    const check = find(JSON.parse(result.stdout) as CheckResult[], 'dns-provider');
    assert.equal(check?.status, 'pass');
    assert.equal(check?.subject, 'challtestsrv: _acme-challenge.good.example.test');
  });

  test('the DNS provider check adds and removes a TXT record through challtestsrv', async () => {
    const provider = new ChalltestsrvDnsProvider({ managementUrl: pebble.challtestsrv?.managementUrl as string });
    assert.equal((await checkDnsProvider(provider, 'good.example.test')).status, 'pass');
    const broken: DnsProvider = {
      name: 'broken',
      addTxtRecord: async () => {
        throw new DnsProviderError('broken', 'REFUSED');
      },
      removeTxtRecord: async () => undefined,
    };
    const failed = await checkDnsProvider(broken, 'good.example.test');
    assert.equal(failed.status, 'fail');
    assert.match(failed.detail, /could not add a TXT record: broken: REFUSED/);
  });
});

describe('CAA evaluation (RFC 8659) and clock check', () => {
  const resolver = (records: Record<string, CaaRecord[]>): DoctorResolver & { asked: string[] } => {
    const asked: string[] = [];
    return {
      asked,
      addresses: async () => [],
      caa: async (name) => {
        asked.push(name);
        return records[name] ?? [];
      },
    };
  };
  const issue = (value: string, tag = 'issue', critical = false): CaaRecord => ({ tag, value, critical });

  test('climbs to the closest name with a CAA set and stops there', async () => {
    const r = resolver({ 'example.com': [issue('letsencrypt.org')], com: [issue('other.example')] });
    const verdict = await evaluateCaa(parseIdentifier('a.b.example.com'), ['letsencrypt.org'], r);
    assert.equal(verdict.allowed, true);
    assert.equal(verdict.relevantName, 'example.com');
    assert.deepEqual(r.asked, ['a.b.example.com', 'b.example.com', 'example.com']);
  });

  test('issuewild governs wildcards when present; issue otherwise', async () => {
    const r = resolver({ 'example.com': [issue('letsencrypt.org'), issue('other.example', 'issuewild')] });
    assert.equal((await evaluateCaa(parseIdentifier('*.example.com'), ['letsencrypt.org'], r)).allowed, false);
    assert.equal((await evaluateCaa(parseIdentifier('www.example.com'), ['letsencrypt.org'], r)).allowed, true);
  });

  test('";" allows no CA, parameters are ignored, unknown critical tags forbid, iodef alone allows', async () => {
    assert.equal((await evaluateCaa(parseIdentifier('x.test'), [], resolver({ 'x.test': [issue(';')] }))).allowed, false);
    assert.equal((await evaluateCaa(parseIdentifier('x.test'), ['ca.example'], resolver({ 'x.test': [issue(' CA.example ; accounturi=https://a/1')] }))).allowed, true);
    assert.equal((await evaluateCaa(parseIdentifier('x.test'), ['ca.example'], resolver({ 'x.test': [issue('ca.example'), issue('x', 'tbs', true)] }))).allowed, false);
    assert.equal((await evaluateCaa(parseIdentifier('x.test'), ['ca.example'], resolver({ 'x.test': [issue('mailto:a@b', 'iodef')] }))).allowed, true);
    // Without the CA's identities a set naming some CA cannot be judged.
    assert.equal((await evaluateCaa(parseIdentifier('x.test'), [], resolver({ 'x.test': [issue('ca.example')] }))).allowed, undefined);
  });

  test('clock: pass within a minute, warn within five, fail beyond', () => {
    assert.equal(checkClock(1_000_000, 1_000_000 + 30_000).status, 'pass');
    assert.equal(checkClock(1_000_000, 1_000_000 - 120_000).status, 'warn');
    assert.equal(checkClock(1_000_000, 1_000_000 + 600_000).status, 'fail');
    assert.equal(checkClock(undefined, 0).status, 'skip');
  });
});

describe('certkeeper doctor with the internal issuer', () => {
  test('no CA or port checks; a name without addresses only warns; exit 0', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'certkeeper-doctor-internal-'));
    // A loopback DNS server answering NXDOMAIN to everything.
    const server = dgram.createSocket('udp4');
    server.on('message', (message, remote) => {
      const query = dnsPacket.decode(message);
      const reply = dnsPacket.encode({ type: 'response', id: query.id, flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE | 3, questions: query.questions ?? [] });
      server.send(reply, remote.port, remote.address);
    });
    await new Promise<void>((resolve) => server.bind(0, '127.0.0.1', resolve));
    try {
      const resolver = `127.0.0.1:${server.address().port}`;
      const result = await runCli(['doctor', 'nothing.example.test', '--json', '--issuer', 'internal', '--resolver', resolver, '--storage', join(dir, 's')], { CERTKEEPER_LOG_LEVEL: 'silent' });
      assert.equal(result.code, 0, result.stdout + result.stderr);
      const results = JSON.parse(result.stdout) as CheckResult[];
      assert.deepEqual(results.map((r) => [r.check, r.status]), [['ca-directory', 'skip'], ['storage', 'pass'], ['dns-addresses', 'warn']]);
    } finally {
      server.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
