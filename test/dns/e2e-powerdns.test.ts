/**
 * End to end: Pebble validates DNS-01 by asking a real PowerDNS, and
 * certkeeper writes the TXT records through the PowerDNS HTTP API.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createKeyAndCsr } from '../../src/acme/csr.js';
import { PowerDnsProvider } from '../../src/dns/powerdns.js';
import { AcmeIssuer } from '../../src/issuers/acme.js';
import { parseIdentifier } from '../../src/names.js';
import { Dns01Solver } from '../../src/challenges/dns01.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import { startPebble, type PebbleHandle } from '../helpers/pebble.js';
import { startPowerDns, type PowerDnsHandle } from '../helpers/pdns.js';
import { skipUnlessInstalled } from '../helpers/system.js';
import { leafNames, RecordingProvider } from './e2e-helpers.js';

const skip = skipUnlessInstalled('pebble', 'pdns_server', 'dig');

describe('DNS-01 end to end with Pebble resolving through PowerDNS', { skip }, () => {
  let pdns: PowerDnsHandle;
  let pebble: PebbleHandle;
  let issuer: AcmeIssuer | undefined;

  before(async () => {
    pdns = await startPowerDns({ zones: ['example.test'] });
    pebble = await startPebble({ dnsServer: pdns.server, startChalltestsrv: false });
  });

  after(async () => {
    await issuer?.close();
    await pebble?.stop();
    await pdns?.stop();
  });

  test('*.example.test and example.test through the API, keeping a foreign TXT value, none of ours left', async () => {
    const name = '_acme-challenge.example.test';
    await pdns.api('PATCH', '/servers/localhost/zones/example.test.', {
      rrsets: [{ name: `${name}.`, type: 'TXT', ttl: 60, changetype: 'REPLACE', records: [{ content: '"keep-me"', disabled: false }] }],
    });
    const provider = new RecordingProvider(new PowerDnsProvider({ apiUrl: pdns.apiUrl, apiKey: pdns.apiKey }));
    issuer = new AcmeIssuer({
      directoryUrl: pebble.directoryUrl,
      caCertificates: pebble.pebbleCaPem,
      agreeToTerms: true,
      storage: new MemoryStorage(),
      solvers: {
        'dns-01': new Dns01Solver({
          provider,
          propagation: { lookupResolvers: [pdns.server], authoritativePort: pdns.dnsPort, intervalMs: 100, timeoutMs: 15_000 },
        }),
      },
      challengePreference: ['dns-01'],
      pollIntervalMs: 50,
    });
    const identifiers = ['example.test', '*.example.test'].map((n) => parseIdentifier(n));
    const { csr } = await createKeyAndCsr(identifiers);
    const before = pebble.issuedCount();
    const { chainPem } = await issuer.issue({ identifiers, csr });
    assert.deepEqual(leafNames(chainPem), ['*.example.test', 'example.test']);
    assert.equal(pebble.issuedCount(), before + 1);
    assert.equal(provider.added.length, 2);
    assert.equal(provider.removed.length, 2);
    assert.deepEqual(await pdns.txt(name), ['keep-me']);
  });
});
