/**
 * Fault: a trace-level run of every DNS provider (exec with an nsupdate hook
 * traced by `sh -x`, rfc2136 against a real BIND9, PowerDNS through its real
 * API), each obtaining a certificate through Pebble and failing once with a
 * bad credential. The captured logs, errors and events hold no key
 * authorization (no account thumbprint), no TXT value, no TSIG secret, no API
 * key and no token.
 */
import assert from 'node:assert/strict';
import { createHash, createPublicKey, randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { inspect } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { ExecDnsProvider } from '../../src/dns/exec.js';
import { PowerDnsProvider } from '../../src/dns/powerdns.js';
import { Rfc2136Provider } from '../../src/dns/rfc2136.js';
import type { DnsProvider } from '../../src/dns/types.js';
import type { Logger } from '../../src/logger.js';
import { CertKeeper } from '../../src/manager/keeper.js';
import { accountKeys } from '../../src/storage/layout.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import { RecordingProvider } from '../dns/e2e-helpers.js';
import { startBind, type BindHandle } from '../helpers/bind.js';
import { captureLogger } from '../helpers/logging.js';
import { startPebble, type PebbleHandle } from '../helpers/pebble.js';
import { startPowerDns, type PowerDnsHandle } from '../helpers/pdns.js';
import { skipUnlessInstalled } from '../helpers/system.js';

const HOOK = fileURLToPath(new URL('../dns/fixtures/nsupdate-hook.sh', import.meta.url));
const EMAIL = 'trace@example.test';

/** RFC 7638 thumbprint of the stored account key: the second half of every key authorization. */
async function accountThumbprint(storage: MemoryStorage, issuerKey: string): Promise<string> {
  const pem = (await storage.load(accountKeys(issuerKey, EMAIL).key)).toString();
  const jwk = createPublicKey(pem).export({ format: 'jwk' }) as { crv: string; kty: string; x: string; y: string };
  return createHash('sha256').update(JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y })).digest('base64url');
}

interface Run {
  provider: (logger: Logger) => DnsProvider;
  /** A provider with a wrong credential, for the failing run. */
  failing: (logger: Logger) => DnsProvider;
  propagation: Record<string, unknown>;
  secrets: string[];
}

/** Obtains one name, fails another, and greps everything certkeeper said at trace level. */
async function traceRun(pebble: PebbleHandle, name: string, run: Run): Promise<void> {
  const { logger, text } = captureLogger('trace');
  const storage = new MemoryStorage();
  const recorder = new RecordingProvider(run.provider(logger));
  const keeper = new CertKeeper({
    ca: pebble.directoryUrl,
    caCertificates: pebble.pebbleCaPem,
    agreeToTerms: true,
    email: EMAIL,
    storage,
    challenges: { http01: false, tlsAlpn01: false, dns01: { provider: recorder, propagation: run.propagation } },
    logger,
  });
  const said: string[] = [];
  keeper.on('cert_failed', (e) => said.push(inspect(e, { depth: 10 })));
  let thumbprint: string;
  try {
    await keeper.manageSync([name]);
    assert.equal(keeper.status(name).state, 'valid');
    const failing = new RecordingProvider(run.failing(logger));
    const error = await keeper
      .manageSync([`bad.${name}`], { challenges: { http01: false, tlsAlpn01: false, dns01: { provider: failing, propagation: run.propagation } } })
      .then(() => assert.fail('the bad credential fails'), (e: unknown) => e);
    said.push(inspect(error, { depth: 10 }), JSON.stringify(keeper.status(`bad.${name}`)));
    thumbprint = await accountThumbprint(storage, keeper.status(name).issuer!);
  } finally {
    await keeper.close();
  }
  const logs = text();
  // The logger is at trace, so nothing is filtered out; certkeeper's most detailed entries are debug.
  assert.match(logs, /"level":20/, 'debug entries were captured');
  assert.match(logs, /TXT|dns-01|DNS/, 'the DNS work was logged');
  assert.ok(said.length >= 2, 'the failure was reported');
  const everything = `${logs}\n${said.join('\n')}`;
  const txtValues = recorder.added.map((r) => r.value);
  assert.ok(txtValues.length >= 1);
  for (const [what, values] of [['key authorization (account thumbprint)', [thumbprint]], ['TXT value', txtValues], ['secret', run.secrets]] as const) {
    for (const value of values) assert.ok(!everything.includes(value), `a ${what} is in the output: ${value}`);
  }
}

describe('fault: trace-level runs of every DNS provider hold no secret', { skip: skipUnlessInstalled('pebble', 'named', 'nsupdate') }, () => {
  const tsigSecret = randomBytes(32).toString('base64');
  const wrongSecret = randomBytes(32).toString('base64');
  const apiToken = `tok_${randomBytes(16).toString('hex')}`;
  let bind: BindHandle;
  let pebble: PebbleHandle;
  before(async () => {
    bind = await startBind({ zones: [{ name: 'example.test' }], tsig: { name: 'trace-key', algorithm: 'hmac-sha256', secret: tsigSecret } });
    pebble = await startPebble({ dnsServer: bind.server, startChalltestsrv: false });
  });
  after(async () => {
    await pebble?.stop();
    await bind?.stop();
  });
  const propagation = () => ({ lookupResolvers: [bind.server], authoritativePort: bind.port, intervalMs: 100, timeoutMs: 15_000 });

  test('exec (an nsupdate hook under sh -x, its env holding the TSIG secret and a token)', { timeout: 90_000 }, async () => {
    const env = (secret: string) => ({ DNS_SERVER: '127.0.0.1', DNS_PORT: String(bind.port), DNS_ZONE: 'example.test', TSIG_NAME: 'trace-key', TSIG_SECRET: secret, API_TOKEN: apiToken });
    await traceRun(pebble, 'exec.example.test', {
      // sh -x prints every command expanded: the secret and the TXT value end up on stderr.
      provider: (logger) => new ExecDnsProvider({ command: 'sh', args: ['-x', HOOK], env: env(tsigSecret), logger }),
      failing: (logger) => new ExecDnsProvider({ command: 'sh', args: ['-x', HOOK], env: env(wrongSecret), logger }),
      propagation: propagation(),
      secrets: [tsigSecret, wrongSecret, apiToken],
    });
  });

  test('rfc2136 against BIND9 with TSIG', { timeout: 90_000 }, async () => {
    await traceRun(pebble, 'rfc.example.test', {
      provider: (logger) => new Rfc2136Provider({ server: bind.server, keyName: 'trace-key', secret: tsigSecret, logger }),
      failing: (logger) => new Rfc2136Provider({ server: bind.server, keyName: 'trace-key', secret: wrongSecret, logger }),
      propagation: propagation(),
      secrets: [tsigSecret, wrongSecret, Buffer.from(tsigSecret, 'base64').toString('hex')],
    });
  });
});

describe('fault: trace-level run of the PowerDNS provider holds no secret', { skip: skipUnlessInstalled('pebble', 'pdns_server') }, () => {
  let pdns: PowerDnsHandle;
  let pebble: PebbleHandle;
  before(async () => {
    pdns = await startPowerDns({ zones: ['example.test'] });
    pebble = await startPebble({ dnsServer: pdns.server, startChalltestsrv: false });
  });
  after(async () => {
    await pebble?.stop();
    await pdns?.stop();
  });

  test('PowerDNS through its HTTP API, and once with a wrong API key', { timeout: 90_000 }, async () => {
    const wrongKey = randomBytes(16).toString('hex');
    await traceRun(pebble, 'pdns.example.test', {
      provider: (logger) => new PowerDnsProvider({ apiUrl: pdns.apiUrl, apiKey: pdns.apiKey, logger }),
      failing: (logger) => new PowerDnsProvider({ apiUrl: pdns.apiUrl, apiKey: wrongKey, logger }),
      propagation: { lookupResolvers: [pdns.server], authoritativePort: pdns.dnsPort, intervalMs: 100, timeoutMs: 15_000 },
      secrets: [pdns.apiKey, wrongKey],
    });
  });
});
