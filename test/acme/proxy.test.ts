import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { certId } from '../../src/acme/ari.js';
import { createKeyAndCsr } from '../../src/acme/csr.js';
import { AcmeRateLimitedError } from '../../src/errors.js';
import type { AcmeIssuer } from '../../src/issuers/acme.js';
import { startPebble, type PebbleHandle } from '../helpers/pebble.js';
import { skipUnlessInstalled } from '../helpers/system.js';
import { ids, pebbleIssuer } from './helpers.js';
import { startProxy, type ProxyHandle, type SeenRequest } from './proxy.js';

const skip = skipUnlessInstalled('pebble', 'pebble-challtestsrv');
const isNewOrder = (r: SeenRequest): boolean => r.method === 'POST' && r.path.startsWith('/order-plz');

describe('ACME engine behind a fault-injecting proxy', { skip }, () => {
  let pebble: PebbleHandle;
  let proxy: ProxyHandle;
  const issuers: AcmeIssuer[] = [];
  const proxiedIssuer = (overrides = {}): AcmeIssuer => {
    const issuer = pebbleIssuer(pebble, { directoryUrl: proxy.directoryUrl, caCertificates: proxy.caPem, ...overrides });
    issuers.push(issuer);
    return issuer;
  };
  before(async () => {
    pebble = await startPebble({ alwaysValid: true, startChalltestsrv: false });
    proxy = await startProxy(pebble);
  });
  after(async () => {
    await Promise.all(issuers.map((i) => i.close()));
    await proxy?.close();
    await pebble?.stop();
  });

  it('honours 429 and 503 Retry-After and signs each retry with a fresh nonce', async () => {
    let injected = 0;
    proxy.seen.length = 0;
    proxy.inject = (r) => {
      if (!isNewOrder(r) || injected >= 2) return undefined;
      injected++;
      return injected === 1
        ? { status: 429, headers: { 'retry-after': '1' }, body: { type: 'urn:ietf:params:acme:error:rateLimited', detail: 'slow down' } }
        : { status: 503, headers: { 'retry-after': new Date(Date.now() + 1000).toUTCString() }, body: { type: 'urn:ietf:params:acme:error:serverInternal', detail: 'busy' } };
    };
    const issuer = proxiedIssuer();
    const identifiers = ids('retry.example.test');
    await issuer.issue({ identifiers, csr: (await createKeyAndCsr(identifiers)).csr });
    const orders = proxy.seen.filter(isNewOrder);
    assert.equal(orders.length, 3, 'two refused newOrder requests, then the one that succeeded');
    const nonces = orders.map((o) => o.protectedHeader?.nonce);
    assert.equal(new Set(nonces).size, 3, 'every retry carries a different nonce');
  });

  it('fails with AcmeRateLimitedError when Retry-After is beyond the cap', async () => {
    proxy.inject = (r) =>
      isNewOrder(r) ? { status: 429, headers: { 'retry-after': '86400' }, body: { type: 'urn:ietf:params:acme:error:rateLimited', detail: 'come back tomorrow' } } : undefined;
    const issuer = proxiedIssuer();
    const identifiers = ids('limited.example.test');
    const started = Date.now();
    await assert.rejects(issuer.issue({ identifiers, csr: (await createKeyAndCsr(identifiers)).csr }), (e: unknown) => {
      assert.ok(e instanceof AcmeRateLimitedError);
      assert.ok(e.retryAt >= started + 86_000_000);
      return true;
    });
    proxy.inject = () => undefined;
  });

  it('sends ARI replaces only when the directory has renewalInfo, and retries once without it on alreadyReplaced', async () => {
    const identifiers = ids('ari.example.test');
    proxy.inject = () => undefined;
    const plain = proxiedIssuer();
    const old = await plain.issue({ identifiers, csr: (await createKeyAndCsr(identifiers)).csr });

    // No renewalInfo in the directory: no replaces field.
    proxy.seen.length = 0;
    await plain.issue({ identifiers, csr: (await createKeyAndCsr(identifiers)).csr, replacesCertificatePem: old.chainPem });
    assert.equal((proxy.seen.find(isNewOrder)?.payload as Record<string, unknown>).replaces, undefined);

    // With renewalInfo: replaces = certID; the CA says alreadyReplaced once.
    proxy.directoryExtra = { renewalInfo: `${new URL(proxy.directoryUrl).origin}/renewal-info` };
    const ari = proxiedIssuer();
    proxy.seen.length = 0;
    let refused = false;
    proxy.inject = (r) => {
      if (!isNewOrder(r) || refused) return undefined;
      refused = true;
      return { status: 409, body: { type: 'urn:ietf:params:acme:error:alreadyReplaced', detail: 'already replaced' } };
    };
    const renewed = await ari.issue({ identifiers, csr: (await createKeyAndCsr(identifiers)).csr, replacesCertificatePem: old.chainPem });
    assert.ok(renewed.chainPem.includes('BEGIN CERTIFICATE'));
    const orders = proxy.seen.filter(isNewOrder).map((o) => o.payload as Record<string, unknown>);
    assert.equal(orders.length, 2);
    assert.equal(orders[0]?.replaces, certId(old.chainPem));
    assert.equal(orders[1]?.replaces, undefined);
    proxy.inject = () => undefined;
    proxy.directoryExtra = {};
  });

  it('renewalInfo() fetches ARI through the issuer trust, and is undefined without renewalInfo', async () => {
    const identifiers = ids('ari2.example.test');
    const issuer = proxiedIssuer();
    const { chainPem } = await issuer.issue({ identifiers, csr: (await createKeyAndCsr(identifiers)).csr });
    assert.equal(await issuer.renewalInfo(chainPem), undefined);

    proxy.directoryExtra = { renewalInfo: `${new URL(proxy.directoryUrl).origin}/renewal-info` };
    const window = { start: '2030-01-01T00:00:00Z', end: '2030-01-02T00:00:00Z' };
    proxy.seen.length = 0;
    proxy.inject = (r) =>
      r.method === 'GET' && r.path.startsWith('/renewal-info/')
        ? { status: 200, headers: { 'content-type': 'application/json', 'retry-after': '3600' }, body: { suggestedWindow: window } }
        : undefined;
    const ari = proxiedIssuer();
    const info = await ari.renewalInfo(chainPem);
    assert.equal(info?.windowStart, Date.parse(window.start));
    assert.equal(info?.windowEnd, Date.parse(window.end));
    assert.equal(proxy.seen.find((r) => r.path.startsWith('/renewal-info/'))?.path, `/renewal-info/${certId(chainPem)}`);
    proxy.inject = () => undefined;
    proxy.directoryExtra = {};
  });
});
