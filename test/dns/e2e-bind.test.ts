/**
 * End to end: Pebble validates DNS-01 by asking a real BIND9, and certkeeper
 * writes the TXT records through the rfc2136 provider (and through the exec
 * provider with an nsupdate script).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { createKeyAndCsr } from '../../src/acme/csr.js';
import { ExecDnsProvider } from '../../src/dns/exec.js';
import { Rfc2136Provider } from '../../src/dns/rfc2136.js';
import type { DnsProvider } from '../../src/dns/types.js';
import { DnsPropagationTimeoutError } from '../../src/errors.js';
import { AcmeIssuer } from '../../src/issuers/acme.js';
import { parseIdentifier } from '../../src/names.js';
import { Dns01Solver } from '../../src/challenges/dns01.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import { startBind, type BindHandle } from '../helpers/bind.js';
import { startPebble, type PebbleHandle } from '../helpers/pebble.js';
import { skipUnlessInstalled } from '../helpers/system.js';
import { findInChain, leafNames, RecordingProvider } from './e2e-helpers.js';

const skip = skipUnlessInstalled('pebble', 'named', 'nsupdate', 'dig');
const HOOK = fileURLToPath(new URL('./fixtures/nsupdate-hook.sh', import.meta.url));
const EXAMPLE = fileURLToPath(new URL('../../examples/dns-rfc2136/index.ts', import.meta.url));
const execFileAsync = promisify(execFile);

describe('DNS-01 end to end with Pebble resolving through BIND9', { skip }, () => {
  const mainSecret = randomBytes(32).toString('base64');
  const delegatedSecret = randomBytes(32).toString('base64');
  let bind: BindHandle;
  /** A second server for example.test that Pebble never asks. */
  let unseen: BindHandle;
  let pebble: PebbleHandle;
  const issuers: AcmeIssuer[] = [];

  before(async () => {
    bind = await startBind({
      // Pebble resolves through this server, which must then follow the CNAME into acme.test like a resolver.
      recursion: true,
      zones: [
        // The CNAME delegates app.example.test's challenge into acme.test; example.test only takes the main key.
        { name: 'example.test', records: ['_acme-challenge.app IN CNAME app.acme.test.'], updateKeys: ['main'] },
        { name: 'acme.test', updateKeys: ['delegated'] },
      ],
      tsig: [
        { name: 'main', algorithm: 'hmac-sha256', secret: mainSecret },
        { name: 'delegated', algorithm: 'hmac-sha256', secret: delegatedSecret },
      ],
    });
    unseen = await startBind({ zones: [{ name: 'example.test' }], tsig: { name: 'main', algorithm: 'hmac-sha256', secret: mainSecret } });
    pebble = await startPebble({ dnsServer: bind.server, startChalltestsrv: false });
  });

  after(async () => {
    await Promise.all(issuers.map((i) => i.close()));
    await pebble?.stop();
    await bind?.stop();
    await unseen?.stop();
  });

  function issuerWith(provider: DnsProvider, propagation: ConstructorParameters<typeof Dns01Solver>[0]['propagation']): AcmeIssuer {
    const solver = new Dns01Solver({ provider, propagation });
    const issuer = new AcmeIssuer({
      directoryUrl: pebble.directoryUrl,
      caCertificates: pebble.pebbleCaPem,
      agreeToTerms: true,
      storage: new MemoryStorage(),
      solvers: { 'dns-01': solver },
      challengePreference: ['dns-01'],
      pollIntervalMs: 50,
    });
    issuers.push(issuer);
    return issuer;
  }

  /** Propagation checked on BIND's authoritative servers, found through BIND itself. */
  const throughBind = () => ({ lookupResolvers: [bind.server], authoritativePort: bind.port, intervalMs: 100, timeoutMs: 15_000 });

  async function issue(issuer: AcmeIssuer, names: string[]): Promise<string> {
    const identifiers = names.map((n) => parseIdentifier(n));
    const { csr } = await createKeyAndCsr(identifiers);
    return (await issuer.issue({ identifiers, csr })).chainPem;
  }

  test('rfc2136: *.example.test and example.test, no _acme-challenge value left afterwards', async () => {
    const provider = new RecordingProvider(new Rfc2136Provider({ server: bind.server, keyName: 'main', secret: mainSecret }));
    const before = pebble.issuedCount();
    const chain = await issue(issuerWith(provider, throughBind()), ['example.test', '*.example.test']);
    assert.deepEqual(leafNames(chain), ['*.example.test', 'example.test']);
    assert.equal(pebble.issuedCount(), before + 1);
    // Both values lived at the same name at once.
    assert.deepEqual(
      provider.added.map((r) => r.name),
      ['_acme-challenge.example.test', '_acme-challenge.example.test'],
    );
    assert.equal(provider.removed.length, 2);
    assert.deepEqual(await bind.txt('_acme-challenge.example.test'), []);
  });

  test('CNAME delegation: the record for app.example.test is written in acme.test', async () => {
    // This key may write only in acme.test: a write into example.test would be REFUSED.
    const provider = new RecordingProvider(new Rfc2136Provider({ server: bind.server, keyName: 'delegated', secret: delegatedSecret }));
    const chain = await issue(issuerWith(provider, throughBind()), ['app.example.test']);
    assert.deepEqual(leafNames(chain), ['app.example.test']);
    assert.deepEqual(
      provider.added.map((r) => r.name),
      ['app.acme.test'],
    );
    assert.deepEqual(await bind.txt('app.acme.test'), []);
  });

  test('exec: an nsupdate script gets the certificate', async () => {
    const provider = new RecordingProvider(
      new ExecDnsProvider({
        command: HOOK,
        env: { DNS_SERVER: '127.0.0.1', DNS_PORT: String(bind.port), DNS_ZONE: 'example.test', TSIG_NAME: 'main', TSIG_SECRET: mainSecret },
      }),
    );
    const chain = await issue(issuerWith(provider, throughBind()), ['hook.example.test']);
    assert.deepEqual(leafNames(chain), ['hook.example.test']);
    assert.equal(provider.removed.length, 1);
    assert.deepEqual(await bind.txt('_acme-challenge.hook.example.test'), []);
  });

  test('examples/dns-rfc2136 gets a wildcard certificate', async () => {
    const out = await mkdtemp(join(tmpdir(), 'certkeeper-example-'));
    try {
      const keyFile = join(out, 'main.key');
      await writeFile(keyFile, `key "main" {\n\talgorithm hmac-sha256;\n\tsecret "${mainSecret}";\n};\n`);
      const caFile = join(out, 'pebble-ca.pem');
      await writeFile(caFile, pebble.pebbleCaPem);
      const { stdout } = await execFileAsync(process.execPath, ['--import', 'tsx', EXAMPLE], {
        env: {
          ...process.env,
          DOMAIN: 'example.test',
          DNS_SERVER: bind.server,
          TSIG_KEY_FILE: keyFile,
          DNS_CHECK_SERVERS: bind.server,
          DNS_PROPAGATION_INTERVAL_MS: '100',
          ACME_DIRECTORY_URL: pebble.directoryUrl,
          ACME_CA_CERT: caFile,
          OUT_DIR: out,
        },
      });
      assert.match(stdout, /certificate written/);
      assert.ok(!stdout.includes(mainSecret), 'the secret is in the example output');
      assert.deepEqual(leafNames(await readFile(join(out, 'cert.pem'), 'utf8')), ['*.example.test', 'example.test']);
      assert.deepEqual(await bind.txt('_acme-challenge.example.test'), []);
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  });

  test('a record written where nobody looks ends in DnsPropagationTimeoutError within the timeout', async () => {
    const provider = new RecordingProvider(new Rfc2136Provider({ server: unseen.server, keyName: 'main', secret: mainSecret }));
    const timeoutMs = 1_500;
    const issuer = issuerWith(provider, { authoritativeServers: [bind.server], intervalMs: 100, timeoutMs });
    const error = await issue(issuer, ['lost.example.test']).then(
      () => assert.fail('expected the propagation check to time out'),
      (e: unknown) => e,
    );
    const timeout = findInChain(error, DnsPropagationTimeoutError);
    assert.ok(timeout, `expected a DnsPropagationTimeoutError, got ${String(error)}`);
    assert.equal(timeout.code, 'ERR_DNS_PROPAGATION_TIMEOUT');
    assert.equal(timeout.recordName, '_acme-challenge.lost.example.test');
    assert.deepEqual(timeout.missingOn, [bind.server]);
    // The configured timeout is the one that fired, not a default of minutes.
    assert.match(timeout.message, new RegExp(`not visible after ${timeoutMs} ms`));
    // The value did reach the unseen server, and clean-up removed it again.
    assert.equal(provider.added.length, 1);
    assert.equal(provider.removed.length, 1);
    assert.deepEqual(await unseen.txt('_acme-challenge.lost.example.test'), []);
  });
});
