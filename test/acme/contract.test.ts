import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { describe, it } from 'node:test';

// Every assumption certkeeper makes about acme-client internals (all under src/acme/: trust.ts,
// connection.ts, revocation.ts, alpn-certificate.ts). When an update
// breaks one, the failure names it; re-verify the internals before widening the range.
const require = createRequire(import.meta.url);
const acme = require('acme-client');
const version = (require('acme-client/package.json') as { version: string }).version;

describe(`acme-client ${version} contract`, () => {
  it('is the version range the internals were verified against (~5.4.0)', () => {
    assert.match(version, /^5\.4\./, `acme-client ${version} is outside the verified ~5.4.0; re-check src/acme/trust.ts and connection.ts`);
  });

  it('exports Client, axios, setLogger and crypto helpers used by certkeeper', () => {
    assert.equal(typeof acme.Client, 'function', 'acme.Client (connection.ts) changed');
    assert.equal(typeof acme.setLogger, 'function', 'acme.setLogger (trust.ts) changed');
    assert.equal(typeof acme.crypto?.createAlpnCertificate, 'function', 'acme.crypto.createAlpnCertificate (acme/alpn-certificate.ts) changed');
    assert.equal(typeof acme.crypto?.getPemBodyAsB64u, 'function', 'acme.crypto.getPemBodyAsB64u (acme/revocation.ts) changed');
  });

  it('shares one axios instance with request interceptors and defaults.acmeSettings.retryMaxAttempts', () => {
    assert.equal(typeof acme.axios?.request, 'function', 'acme.axios.request (acme/trust.ts, ARI) changed');
    assert.equal(typeof acme.axios?.interceptors?.request?.use, 'function', 'acme.axios.interceptors.request.use (trust.ts) changed');
    const settings = acme.axios?.defaults?.acmeSettings;
    assert.equal(typeof settings, 'object', 'acme.axios.defaults.acmeSettings (trust.ts turns off replays) is gone');
    assert.ok('retryMaxAttempts' in settings, 'acme.axios.defaults.acmeSettings.retryMaxAttempts is gone');
  });

  it("resolves its own axios copy, whose getAdapter('http') exists (trust.ts wraps it)", () => {
    const fromAcme = createRequire(require.resolve('acme-client'));
    const axios = fromAcme('axios');
    assert.equal(typeof axios.getAdapter, 'function', "axios.getAdapter (trust.ts) is gone from acme-client's axios");
    assert.equal(typeof axios.getAdapter('http'), 'function', "axios.getAdapter('http') no longer returns an adapter");
  });

  it('a Client has the private api/http members connection.ts patches (accountUrl, apiRequest, getDirectory, getNonce, request)', () => {
    const key = require('node:crypto').generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' });
    const client = new acme.Client({ directoryUrl: 'https://acme.invalid/directory', accountKey: key });
    const { api, http } = client as { api?: Record<string, unknown>; http?: Record<string, unknown> };
    assert.equal(typeof api, 'object', 'client.api is gone');
    assert.ok(api && 'accountUrl' in api, 'client.api.accountUrl is gone');
    assert.equal(typeof api?.apiRequest, 'function', 'client.api.apiRequest is gone');
    assert.match(String(api?.apiRequest), /apiRequest\(url, payload[^)]*validStatusCodes[^)]*includeJwsKid[^)]*includeExternalAccountBinding/, 'client.api.apiRequest(url, payload, validStatusCodes, { includeJwsKid, includeExternalAccountBinding }) signature changed');
    for (const method of ['getDirectory', 'getNonce', 'request']) {
      assert.equal(typeof http?.[method], 'function', `client.http.${method} is gone`);
    }
    assert.match(String(http?.request), /request\(url, method/, 'client.http.request(url, method, opts) signature changed');
  });
});
