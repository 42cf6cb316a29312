import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import tls from 'node:tls';
import { InvalidOptionError } from '../../src/errors.js';
import { isMarkedAcmeTlsSocket } from '../../src/tls/alpn-challenge.js';
import { alpnProtocolNames, createAlpnCallback } from '../../src/tls/alpn.js';
import { buildMaterial } from '../../src/tls/certificate-material.js';
import { ContextCache } from '../../src/tls/context-cache.js';
import { buildTlsOptions } from '../../src/tls/tls-options.js';
import { createTestLeaf } from '../helpers/tls-certs.js';

describe('buildTlsOptions', () => {
  it('composes with user options without changing them, and Node accepts the result', async () => {
    const cache = new ContextCache();
    const leaf = await createTestLeaf(undefined, { names: ['default.test'] });
    cache.setDefault(buildMaterial(leaf.chainPem, leaf.keyPem));
    const user = Object.freeze({ ALPNProtocols: ['h2', 'http/1.1'], minVersion: 'TLSv1.3' as const, requestCert: false, ciphers: 'TLS_AES_128_GCM_SHA256' });
    const options = buildTlsOptions(cache, user);
    assert.equal(options.ALPNProtocols, undefined);
    assert.equal(typeof options.SNICallback, 'function');
    assert.equal(typeof options.ALPNCallback, 'function');
    assert.equal(options.minVersion, 'TLSv1.3');
    assert.equal(options.ciphers, 'TLS_AES_128_GCM_SHA256');
    assert.equal(options.requestCert, false);
    assert.equal(options.cert, cache.defaultMaterial?.certPem);
    assert.deepEqual(user.ALPNProtocols, ['h2', 'http/1.1']);
    assert.equal(cache.contextOptions.minVersion, 'TLSv1.3');
    assert.equal(cache.contextOptions.ciphers, 'TLS_AES_128_GCM_SHA256');
    tls.createServer(options).close();
    cache.close();
  });

  it("keeps the user's own default certificate", () => {
    const cache = new ContextCache();
    const options = buildTlsOptions(cache, { cert: 'USER CERT', key: 'USER KEY' });
    assert.equal(options.cert, 'USER CERT');
    cache.close();
  });

  it('rejects a user SNICallback, ALPNCallback or malformed ALPNProtocols, naming the option', () => {
    const cache = new ContextCache();
    assert.throws(() => buildTlsOptions(cache, { SNICallback: () => {} }), (e: unknown) => e instanceof InvalidOptionError && e.option === 'SNICallback');
    assert.throws(() => buildTlsOptions(cache, { ALPNCallback: () => 'h2' }), (e: unknown) => e instanceof InvalidOptionError && e.option === 'ALPNCallback');
    assert.throws(() => buildTlsOptions(cache, { ALPNProtocols: 'h2' as never }), (e: unknown) => e instanceof InvalidOptionError && e.option === 'ALPNProtocols');
    assert.throws(() => buildTlsOptions(cache, { ca: 'garbage' }), (e: unknown) => e instanceof InvalidOptionError && e.option === 'ca');
    cache.close();
  });
});

describe('ALPN', () => {
  it('reads ALPNProtocols in every form Node accepts', () => {
    assert.deepEqual(alpnProtocolNames(['h2', Buffer.from('http/1.1')]), ['h2', 'http/1.1']);
    assert.deepEqual(alpnProtocolNames(Buffer.from('\x02h2\x08http/1.1', 'latin1')), ['h2', 'http/1.1']);
    assert.equal(alpnProtocolNames(undefined), undefined);
  });

  it('marks only an exact acme-tls/1 offer for a name with a challenge; others get a normal protocol', () => {
    const challenges = { get: (name: string) => (name === 'c.test' ? tls.createSecureContext() : undefined) };
    const alpn = createAlpnCallback(['h2'], challenges);
    const validator = {} as tls.TLSSocket;
    assert.equal(alpn.call(validator, { servername: 'c.test', protocols: ['acme-tls/1'] }), 'acme-tls/1');
    assert.ok(isMarkedAcmeTlsSocket(validator));
    const browser = {} as tls.TLSSocket;
    assert.equal(alpn.call(browser, { servername: 'c.test', protocols: ['h2', 'acme-tls/1'] }), 'h2');
    assert.equal(isMarkedAcmeTlsSocket(browser), false);
    const stranger = {} as tls.TLSSocket;
    assert.equal(alpn.call(stranger, { servername: 'x.test', protocols: ['acme-tls/1'] }), undefined);
    assert.equal(isMarkedAcmeTlsSocket(stranger), false);
    // No user protocols: the server speaks HTTP/1.1, so http/1.1 when offered (curl offers h2 first),
    // else the client's first choice, never acme-tls/1 for an ordinary client.
    const open = createAlpnCallback();
    assert.equal(open.call({} as tls.TLSSocket, { servername: 'x.test', protocols: ['acme-tls/1', 'http/1.1'] }), 'http/1.1');
    assert.equal(open.call({} as tls.TLSSocket, { servername: 'x.test', protocols: ['h2', 'http/1.1'] }), 'http/1.1');
    assert.equal(open.call({} as tls.TLSSocket, { servername: 'x.test', protocols: ['spdy/3', 'acme-tls/1'] }), 'spdy/3');
  });
});
