import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { describe, it } from 'node:test';

// Every assumption certkeeper makes about acme-client. The order path no longer uses it (src/acme/http.ts,
// jws.ts, connection.ts); src/acme/alpn-certificate.ts still builds the TLS-ALPN-01 certificate with it,
// and test/helpers/acme-client-trust.ts (tests driving acme-client directly) hooks its axios instance.
const require = createRequire(import.meta.url);
const acme = require('acme-client');
const version = (require('acme-client/package.json') as { version: string }).version;

describe(`acme-client ${version} contract`, () => {
  it('is the version range the internals were verified against (~5.4.0)', () => {
    assert.match(version, /^5\.4\./, `acme-client ${version} is outside the verified ~5.4.0; re-check src/acme/alpn-certificate.ts and src/acme/acme-client.ts`);
  });

  it('exports the crypto helper certkeeper uses, from the file acme-client.ts requires', () => {
    assert.equal(typeof acme.crypto?.createAlpnCertificate, 'function', 'acme.crypto.createAlpnCertificate (acme/alpn-certificate.ts) changed');
    assert.equal(typeof require('acme-client/src/crypto/index.js').createAlpnCertificate, 'function', 'acme-client/src/crypto/index.js moved (acme/acme-client.ts)');
  });

  it('(test helper) shares one axios instance with request interceptors and defaults.acmeSettings.retryMaxAttempts', () => {
    assert.equal(typeof acme.axios?.interceptors?.request?.use, 'function', 'acme.axios.interceptors.request.use (test/helpers/acme-client-trust.ts) changed');
    const settings = acme.axios?.defaults?.acmeSettings;
    assert.equal(typeof settings, 'object', 'acme.axios.defaults.acmeSettings is gone');
    assert.ok('retryMaxAttempts' in settings, 'acme.axios.defaults.acmeSettings.retryMaxAttempts is gone');
  });
});
