import assert from 'node:assert/strict';
import { createPrivateKey } from 'node:crypto';
import { describe, it } from 'node:test';
import acme from 'acme-client';
import { createKeyAndCsr } from '../../src/acme/csr.js';
import { DIRECTORY_PRESETS, resolveDirectoryUrl } from '../../src/acme/directories.js';
import { InvalidOptionError } from '../../src/errors.js';
import { AcmeIssuer, resolveAcmeIssuerOptions, type AcmeIssuerOptions } from '../../src/issuers/acme.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import { RecordingSolver, ids } from './helpers.js';

const base = (): AcmeIssuerOptions => ({ storage: new MemoryStorage(), solvers: { 'http-01': new RecordingSolver() } });

function rejectsOption(options: AcmeIssuerOptions, option: string): void {
  assert.throws(() => resolveAcmeIssuerOptions(options), (e: unknown) => {
    assert.ok(e instanceof InvalidOptionError, String(e));
    assert.equal(e.option, option);
    return true;
  });
}

describe('directory presets', () => {
  it('maps presets and accepts any https URL', () => {
    assert.equal(resolveDirectoryUrl('letsencrypt'), 'https://acme-v02.api.letsencrypt.org/directory');
    assert.equal(resolveDirectoryUrl('letsencrypt-staging'), DIRECTORY_PRESETS['letsencrypt-staging']);
    for (const preset of ['zerossl', 'google', 'google-staging'] as const) assert.match(resolveDirectoryUrl(preset), /^https:\/\//);
    assert.equal(resolveDirectoryUrl('https://ca.internal:9000/acme/acme/directory'), 'https://ca.internal:9000/acme/acme/directory');
  });
  it('rejects http, credentials, garbage and unknown presets', () => {
    for (const bad of ['http://ca.test/dir', 'https://u:p@ca.test/dir', 'letsencrypt-prod', '', 42]) {
      assert.throws(() => resolveDirectoryUrl(bad), InvalidOptionError, String(bad));
    }
  });
});

describe('AcmeIssuer options', () => {
  it('resolves defaults into a frozen config without touching the caller object', () => {
    const options = base();
    const copy = { ...options };
    const config = resolveAcmeIssuerOptions(options);
    assert.ok(Object.isFrozen(config));
    assert.equal(config.directoryUrl, DIRECTORY_PRESETS.letsencrypt);
    assert.equal(config.agreeToTerms, false);
    assert.deepEqual(config.challengePreference, ['http-01', 'tls-alpn-01', 'dns-01']);
    assert.deepEqual(options, copy);
  });

  it('derives the storage key from the directory URL', () => {
    const issuer = new AcmeIssuer({ ...base(), ca: 'letsencrypt-staging' });
    assert.equal(issuer.key, 'acme-staging-v02.api.letsencrypt.org-directory');
    void issuer.close();
  });

  it('names the offending option', () => {
    rejectsOption({ ...base(), directoryUrl: 'http://x.test/dir' }, 'directoryUrl');
    rejectsOption({ ...base(), ca: 'nope' as never }, 'ca');
    rejectsOption({ ...base(), caCertificates: 'not pem' }, 'caCertificates');
    rejectsOption({ ...base(), email: 'not-an-email' }, 'email');
    rejectsOption({ ...base(), agreeToTerms: 'yes' as never }, 'agreeToTerms');
    rejectsOption({ ...base(), externalAccountBinding: { kid: '', hmacKey: 'abc' } }, 'externalAccountBinding.kid');
    rejectsOption({ ...base(), storage: {} as never }, 'storage');
    rejectsOption({ ...base(), solvers: { 'http-02': new RecordingSolver() } as never }, 'solvers');
    rejectsOption({ ...base(), solvers: { 'dns-01': {} as never } }, 'solvers.dns-01');
    rejectsOption({ ...base(), challengePreference: ['smoke-signals' as never] }, 'challengePreference');
    rejectsOption({ ...base(), orderTimeoutMs: -1 }, 'orderTimeoutMs');
    rejectsOption({ ...base(), pollIntervalMs: Number.NaN }, 'pollIntervalMs');
    rejectsOption({ ...base(), retry: { maxAttempts: 0 } }, 'retry.maxAttempts');
  });

  it('never puts the EAB HMAC key into an error message', () => {
    const secret = 'this is not base64url but secret!';
    try {
      resolveAcmeIssuerOptions({ ...base(), externalAccountBinding: { kid: 'k', hmacKey: secret } });
      assert.fail('expected an error');
    } catch (error) {
      assert.ok(error instanceof InvalidOptionError);
      assert.equal(error.option, 'externalAccountBinding.hmacKey');
      assert.ok(!error.message.includes(secret));
    }
  });
});

describe('createKeyAndCsr', () => {
  const expected = {
    'ecdsa-p256': { type: 'ec', curve: 'prime256v1' },
    'ecdsa-p384': { type: 'ec', curve: 'secp384r1' },
    rsa2048: { type: 'rsa', bits: 2048 },
    // rsa3072/rsa4096 take the same path with another modulus length; generating them costs seconds on this machine.
  } as const;
  for (const [keyType, want] of Object.entries(expected)) {
    it(`makes a ${keyType} key and a CSR for its names`, async () => {
      const identifiers = ids('csr.example.test', '*.csr.example.test', '10.0.0.1');
      const { keyPem, csr } = await createKeyAndCsr(identifiers, keyType as keyof typeof expected);
      const key = createPrivateKey(keyPem);
      assert.equal(key.asymmetricKeyType, want.type);
      if ('curve' in want) assert.equal(key.asymmetricKeyDetails?.namedCurve, want.curve);
      if ('bits' in want) assert.equal(key.asymmetricKeyDetails?.modulusLength, want.bits);
      const domains = acme.crypto.readCsrDomains(csr);
      assert.equal(domains.commonName, 'csr.example.test');
      assert.deepEqual([...domains.altNames].sort(), ['*.csr.example.test', '10.0.0.1', 'csr.example.test']);
    });
  }
  it('rejects an unknown key type', async () => {
    await assert.rejects(createKeyAndCsr(ids('a.test'), 'dsa' as never), InvalidOptionError);
  });
});
