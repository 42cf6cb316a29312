import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import type { X509Certificate } from 'node:crypto';
import { alternateLinks, assertLeafMatchesCsr, chainIssuerNames, parseChainPem, selectPreferredChain, validateChainPem } from '../../src/acme/chain.js';
import { CertificateInvalidError } from '../../src/errors.js';
import { makeChain } from './certs.js';
import { createKeyAndCsr } from '../../src/acme/csr.js';
import { ids } from './helpers.js';

describe('certificate chain checks', () => {
  let chainA: string;
  let chainB: string;
  before(async () => {
    chainA = await makeChain('Root A', 'leaf.test');
    chainB = await makeChain('Root B', 'leaf.test');
  });

  it('accepts a chain of CERTIFICATE blocks and re-encodes it leaf first', () => {
    const out = validateChainPem(chainA);
    assert.equal(out.match(/BEGIN CERTIFICATE/g)?.length, 2);
    assert.deepEqual(chainIssuerNames(out), ['Intermediate of Root A', 'Root A']);
  });

  it('rejects a chain holding any other PEM block', () => {
    const key = '-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIEs=\n-----END PRIVATE KEY-----\n';
    assert.throws(() => validateChainPem(chainA + key), CertificateInvalidError);
    assert.throws(() => validateChainPem(key + chainA), CertificateInvalidError);
    const ec = chainA.replace('BEGIN CERTIFICATE', 'BEGIN EC PARAMETERS');
    assert.throws(() => validateChainPem(ec), CertificateInvalidError);
    try {
      validateChainPem(chainA + key);
    } catch (error) {
      assert.ok(!(error as Error).message.includes('MC4CAQAw'), 'the foreign block content is not echoed');
    }
  });

  it('rejects an empty, truncated or unparsable chain', () => {
    assert.throws(() => validateChainPem(''), CertificateInvalidError);
    assert.throws(() => validateChainPem(chainA.slice(0, chainA.length - 40)), CertificateInvalidError);
    assert.throws(() => validateChainPem('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n'), CertificateInvalidError);
  });

  it('selects the preferred chain by issuer common name and falls back to the default', () => {
    assert.equal(selectPreferredChain([chainA, chainB], 'Root B'), chainB);
    assert.equal(selectPreferredChain([chainA, chainB], 'Intermediate of Root B'), chainB);
    assert.equal(selectPreferredChain([chainA, chainB], 'Root C'), chainA);
    assert.equal(selectPreferredChain([chainA, chainB], undefined), chainA);
  });

  it('rejects a leaf whose key is not the CSR key', async () => {
    const { csr } = await createKeyAndCsr(ids('leaf.test'));
    const leaf = parseChainPem(chainA).certificates[0] as X509Certificate;
    assert.throws(() => assertLeafMatchesCsr(leaf, csr), CertificateInvalidError);
    assert.throws(() => assertLeafMatchesCsr(leaf, Buffer.from('not a csr')), CertificateInvalidError);
  });

  it('parses alternate links from Link headers', () => {
    assert.deepEqual(
      alternateLinks(['<https://ca.test/cert/1/alt/1>;rel="alternate", <https://ca.test/dir>;rel="index"', '<https://ca.test/cert/1/alt/2>; rel=alternate']),
      ['https://ca.test/cert/1/alt/1', 'https://ca.test/cert/1/alt/2'],
    );
    assert.deepEqual(alternateLinks(undefined), []);
  });
});
