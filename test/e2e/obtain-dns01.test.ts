import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createKeyAndCsr } from '../../src/acme/csr.js';
import { ChalltestsrvDnsProvider } from '../../src/dns/challtestsrv.js';
import { dnsQuery, parseDnsServer, txtValues } from '../../src/dns/query.js';
import { AcmeIssuer } from '../../src/issuers/acme.js';
import { parseIdentifier } from '../../src/names.js';
import { Dns01Solver } from '../../src/challenges/dns01.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import { startPebble, type PebbleHandle } from '../helpers/pebble.js';
import { skipUnlessInstalled } from '../helpers/system.js';
import { assertValidChain } from '../challenges/e2e-verify.js';

const skip = skipUnlessInstalled('pebble', 'pebble-challtestsrv');

describe('obtain a certificate through DNS-01 (real Pebble validation via challtestsrv)', { skip }, () => {
  let pebble: PebbleHandle;
  let issuer: AcmeIssuer | undefined;

  before(async () => {
    pebble = await startPebble();
  });
  after(async () => {
    await issuer?.close();
    await pebble?.stop();
  });

  test('one certificate for *.example.test and example.test (two TXT values at one name at once)', async () => {
    const chall = pebble.challtestsrv;
    assert.ok(chall, 'the harness started challtestsrv');
    const provider = new ChalltestsrvDnsProvider({ managementUrl: chall.managementUrl });
    // Each add waits until both values are in, so both are live (and checked) before either is validated:
    // the order engine solves the two authorizations in parallel; a serial engine would time out here.
    let added = 0;
    let bothAdded!: () => void;
    const bothIn = new Promise<void>((resolve) => (bothAdded = resolve));
    let seenTogether: string[] = [];
    const barrierProvider = {
      name: provider.name,
      addTxtRecord: async (...args: Parameters<typeof provider.addTxtRecord>) => {
        await provider.addTxtRecord(...args);
        if (++added === 2) {
          const result = await dnsQuery(parseDnsServer(chall.dnsServer), '_acme-challenge.example.test', 'TXT');
          seenTogether = txtValues(result, '_acme-challenge.example.test');
          bothAdded();
        }
        await bothIn;
      },
      removeTxtRecord: (...args: Parameters<typeof provider.removeTxtRecord>) => provider.removeTxtRecord(...args),
    };
    const solver = new Dns01Solver({ provider: barrierProvider, propagation: { resolvers: [chall.dnsServer], intervalMs: 50, timeoutMs: 10_000 } });
    issuer = new AcmeIssuer({
      directoryUrl: pebble.directoryUrl,
      caCertificates: pebble.pebbleCaPem,
      agreeToTerms: true,
      storage: new MemoryStorage(),
      solvers: { 'dns-01': solver },
      pollIntervalMs: 50,
    });
    const names = ['*.example.test', 'example.test'];
    const identifiers = names.map((n) => parseIdentifier(n));
    const { keyPem, csr } = await createKeyAndCsr(identifiers);
    const issuedBefore = pebble.issuedCount();

    const { chainPem } = await issuer.issue({ identifiers, csr });

    assertValidChain(chainPem, await pebble.rootPem(), keyPem, names);
    assert.equal(pebble.issuedCount(), issuedBefore + 1);
    assert.equal(seenTogether.length, 2, 'wildcard and apex values were served at one name at the same time');
    const left = await dnsQuery(parseDnsServer(chall.dnsServer), '_acme-challenge.example.test', 'TXT');
    assert.deepEqual(txtValues(left, '_acme-challenge.example.test'), [], 'no TXT value left behind');
  });
});
