/**
 * Fault 10: everything certkeeper logs at trace level (more than debug)
 * during a run that uses every kind of secret: an EAB HMAC key (Pebble
 * requires EAB), a TSIG secret (DNS-01 through BIND9 with the rfc2136
 * provider), certificate and account private keys, and a failing name
 * (errors with causes are logged too). The captured text holds none of them.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { Rfc2136Provider } from '../../src/dns/rfc2136.js';
import { CertKeeper } from '../../src/manager/keeper.js';
import { loadCertificateSet } from '../../src/storage/certificates.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import { startBind, type BindHandle } from '../helpers/bind.js';
import { captureLogger } from '../helpers/logging.js';
import { startPebble, type PebbleHandle } from '../helpers/pebble.js';
import { skipUnlessInstalled } from '../helpers/system.js';

const skip = skipUnlessInstalled('pebble', 'named');

describe('fault: secrets in logs', { skip }, () => {
  const tsigSecret = randomBytes(32).toString('base64');
  const hmacKey = randomBytes(32).toString('base64url');
  let bind: BindHandle;
  let pebble: PebbleHandle;
  before(async () => {
    bind = await startBind({
      zones: [{ name: 'example.test', records: ['logs IN A 127.0.0.1', 'blocked IN A 127.0.0.1'] }],
      tsig: { name: 'certkeeper', algorithm: 'hmac-sha256', secret: tsigSecret },
    });
    pebble = await startPebble({ dnsServer: bind.server, startChalltestsrv: false, eab: { 'kid-logs': hmacKey }, domainBlocklist: ['blocked.example.test'] });
  });
  after(async () => {
    await pebble?.stop();
    await bind?.stop();
  });

  test('a trace-level run with EAB, TSIG and a failure logs no private key, no HMAC key, no TSIG secret', { timeout: 90_000 }, async () => {
    const { logger, text } = captureLogger('trace');
    const storage = new MemoryStorage();
    const keeper = new CertKeeper({
      ca: pebble.directoryUrl,
      caCertificates: pebble.pebbleCaPem,
      agreeToTerms: true,
      email: 'logs@example.test',
      externalAccountBinding: { kid: 'kid-logs', hmacKey },
      storage,
      challenges: { http01: { port: pebble.httpPort, host: '127.0.0.1' }, tlsAlpn01: false },
      logger,
    });
    try {
      await keeper.manageSync(['logs.example.test']);
      await keeper.manageSync([['*.example.test']], {
        challenges: {
          http01: false,
          tlsAlpn01: false,
          dns01: {
            provider: new Rfc2136Provider({ server: bind.server, keyName: 'certkeeper', secret: tsigSecret, logger }),
            propagation: { lookupResolvers: [bind.server], authoritativePort: bind.port, intervalMs: 100, timeoutMs: 15_000 },
          },
        },
      });
      await assert.rejects(keeper.manageSync(['blocked.example.test']));

      const logs = text();
      assert.match(logs, /certificate obtained/);
      assert.match(logs, /"level":20/, 'debug entries were captured');
      assert.match(logs, /rejectedIdentifier/, 'the failure was logged');
      assert.ok(!logs.includes('PRIVATE KEY'), 'no PEM private key');
      assert.ok(!logs.includes(hmacKey), 'no EAB HMAC key');
      assert.ok(!logs.includes(Buffer.from(hmacKey, 'base64url').toString('base64')), 'no EAB HMAC key (base64)');
      assert.ok(!logs.includes(tsigSecret), 'no TSIG secret');
      assert.ok(!logs.includes(Buffer.from(tsigSecret, 'base64').toString('hex')), 'no TSIG secret (hex)');
      // The certificate keys themselves, in any PEM body form.
      for (const name of ['logs.example.test', 'wildcard_.example.test']) {
        const set = await loadCertificateSet(storage, keeper.status(name === 'logs.example.test' ? name : '*.example.test').issuer!, name);
        const body = set.keyPem.split('\n').filter((l) => l && !l.startsWith('-----')).join('');
        assert.ok(!logs.includes(body.slice(0, 40)), `no part of the ${name} key`);
      }
    } finally {
      await keeper.close();
    }
  });
});
