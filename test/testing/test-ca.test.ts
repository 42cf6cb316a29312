import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import * as x509 from '@peculiar/x509';
import { InvalidOptionError } from '../../src/errors.js';
import { createKeyAndCsr } from '../../src/acme/csr.js';
import { AcmeIssuer } from '../../src/issuers/acme.js';
import { parseIdentifier } from '../../src/names.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import { startTestCa } from '../../src/testing/index.js';
import { skipUnlessInstalled } from '../helpers/system.js';
import { signedPost, startStack, type Stack } from './stack.js';

const skip = skipUnlessInstalled('pebble', 'pebble-challtestsrv');
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const CERT_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

function lifetimeOf(chainPem: string): number {
  const leaf = new X509Certificate(chainPem);
  return Date.parse(leaf.validTo) - Date.parse(leaf.validFrom);
}

describe('test CA: profiles, lifetimes, faults and counts in front of a real Pebble', { skip }, () => {
  let stack: Stack;
  before(async () => {
    stack = await startStack();
  });
  after(async () => {
    await stack?.stop();
  });

  it('advertises meta.profiles and renewalInfo in the directory, next to Pebble own endpoints', async () => {
    const { status, body } = await stack.get(stack.ca.directoryUrl);
    assert.equal(status, 200);
    const directory = JSON.parse(body) as { meta: { profiles: Record<string, string>; termsOfService?: string }; renewalInfo: string; newOrder: string };
    assert.deepEqual(Object.keys(directory.meta.profiles).sort(), ['classic', 'shortlived', 'tlsserver']);
    assert.ok(directory.meta.termsOfService, "Pebble's own meta is kept");
    assert.equal(new URL(directory.renewalInfo).origin, new URL(stack.ca.directoryUrl).origin);
    assert.equal(new URL(directory.newOrder).origin, new URL(stack.ca.directoryUrl).origin, 'Pebble names the front in its URLs');
  });

  it('issues a shortlived certificate that lasts 160 hours, echoes the profile, and chains to Pebble intermediate and root', async () => {
    const client = await stack.client();
    const before = stack.pebble.issuedCount();
    const { order, chainPem } = await stack.obtain(client, ['short.example.test'], { profile: 'shortlived' });
    assert.equal((order as unknown as { profile?: string }).profile, 'shortlived');
    assert.equal(lifetimeOf(chainPem), 160 * HOUR);
    assert.equal(stack.pebble.issuedCount(), before + 1, 'Pebble validated and issued; the front re-signed');

    const [leafPem, intermediatePem] = chainPem.match(CERT_BLOCK) ?? [];
    const leaf = new X509Certificate(leafPem as string);
    const intermediate = new X509Certificate(intermediatePem as string);
    assert.ok(leaf.verify(intermediate.publicKey), 'the leaf is signed by the intermediate that follows it');
    assert.ok(intermediate.verify(new X509Certificate(stack.ca.rootCertificate).publicKey));
    assert.equal(intermediate.fingerprint256, new X509Certificate(stack.ca.intermediateCertificate).fingerprint256);
    assert.equal(leaf.subjectAltName, 'DNS:short.example.test');
    const crlDp = new x509.X509Certificate(leafPem as string).getExtension(x509.CRLDistributionPointsExtension);
    assert.equal(crlDp?.distributionPoints[0]?.distributionPoint?.fullName?.[0]?.uniformResourceIdentifier, stack.ca.crlUrl);
    assert.equal(leaf.infoAccess, undefined, 'no OCSP responder named unless the ocsp option asks, as Let\'s Encrypt');
    assert.equal(stack.ca.ocspUrl, undefined);

    const known = stack.ca.certificate(chainPem);
    assert.equal(known.profile, 'shortlived');
    assert.deepEqual(known.identifiers, ['short.example.test']);
    assert.equal(known.serialNumber, leaf.serialNumber.toLowerCase());
  });

  it('issues tlsserver certificates for 45 days, and classic (90 days) when the order names no profile', async () => {
    const client = await stack.client();
    const tls = await stack.obtain(client, ['tls.example.test'], { profile: 'tlsserver' });
    assert.equal(lifetimeOf(tls.chainPem), 45 * DAY);
    const plain = await stack.obtain(client, ['plain.example.test']);
    assert.equal(lifetimeOf(plain.chainPem), 90 * DAY);
    assert.equal((plain.order as unknown as { profile?: string }).profile, 'classic');
    assert.equal(stack.ca.certificate(plain.chainPem).profile, 'classic');
  });

  it('refuses a profile it does not offer with invalidProfile, before Pebble sees the order', async () => {
    const client = await stack.client();
    const ordersBefore = stack.ca.requests('newOrder');
    const response = await signedPost(client, 'newOrder', { identifiers: [{ type: 'dns', value: 'odd.example.test' }], profile: 'nonesuch' });
    assert.equal(response.status, 400);
    const problem = response.data as { type: string; detail: string };
    assert.equal(problem.type, 'urn:ietf:params:acme:error:invalidProfile');
    assert.match(problem.detail, /classic, tlsserver, shortlived/);
    assert.ok(typeof response.headers['replay-nonce'] === 'string', 'a problem answer carries a fresh nonce');
    assert.equal(stack.ca.requests('newOrder'), ordersBefore + 1);
    await assert.rejects(stack.obtain(client, ['odd.example.test'], { profile: 'nonesuch' }), /not offered/);
  });

  it('answers an injected fault with Retry-After; certkeeper AcmeIssuer waits, signs again and gets its certificate', async () => {
    stack.ca.injectFault({ endpoint: 'directory', status: 429, retryAfter: 7, times: 1 });
    const refused = await stack.get(stack.ca.directoryUrl);
    assert.equal(refused.status, 429);
    assert.equal(refused.headers['retry-after'], '7');
    assert.equal((JSON.parse(refused.body) as { type: string }).type, 'urn:ietf:params:acme:error:rateLimited');
    assert.equal((await stack.get(stack.ca.directoryUrl)).status, 200, 'times: 1 answers one request only');

    const issuer = new AcmeIssuer({
      directoryUrl: stack.ca.directoryUrl,
      caCertificates: stack.ca.caCertificate,
      agreeToTerms: true,
      storage: new MemoryStorage(),
      solvers: { 'http-01': stack.solver },
      pollIntervalMs: 50,
    });
    try {
      const identifiers = [parseIdentifier('retry.example.test')];
      stack.ca.injectFault({ endpoint: 'newOrder', status: 503, retryAfter: 1, times: 1 });
      const ordersBefore = stack.ca.requests('newOrder');
      const result = await issuer.issue({ identifiers, csr: (await createKeyAndCsr(identifiers)).csr });
      assert.equal(stack.ca.requests('newOrder'), ordersBefore + 2, 'one refused newOrder, then the one that worked');
      assert.equal(lifetimeOf(result.chainPem), 90 * DAY);
    } finally {
      await issuer.close();
    }
  });

  it('counts every request by endpoint, and sends a configured Retry-After on successful answers', async () => {
    const client = await stack.client();
    stack.ca.setRetryAfter('order', 1);
    const before = { newOrder: stack.ca.requests('newOrder'), finalize: stack.ca.requests('finalize'), certificate: stack.ca.requests('certificate'), total: stack.ca.requests() };
    const { order } = await stack.obtain(client, ['count.example.test']);
    stack.ca.setRetryAfter('order', undefined);
    assert.equal(stack.ca.requests('newOrder'), before.newOrder + 1);
    assert.equal(stack.ca.requests('finalize'), before.finalize + 1);
    assert.equal(stack.ca.requests('certificate'), before.certificate + 1);
    assert.ok(stack.ca.requests('authz') >= 1 && stack.ca.requests('challenge') >= 1);
    assert.ok(stack.ca.requests() > before.total + 3);
    const polled = await signedPost(client, order.url, null);
    assert.equal(polled.headers['retry-after'], undefined, 'Retry-After stops once unset');
    stack.ca.setRetryAfter('order', 2);
    const again = await signedPost(client, order.url, null);
    assert.equal(again.headers['retry-after'], '2');
    stack.ca.setRetryAfter('order', undefined);
  });
});

describe('test CA lifecycle', { skip }, () => {
  it('closes idempotently (await using included) and frees its ports', async () => {
    const stack = await startStack();
    try {
      const pebble = { directoryUrl: stack.pebble.directoryUrl, managementUrl: stack.pebble.managementUrl, caCertificate: stack.pebble.pebbleCaPem };
      let directoryUrl = '';
      let crlUrl = '';
      {
        await using ca = await startTestCa({ pebble });
        ({ directoryUrl, crlUrl } = ca);
        assert.equal((await stack.getBytes(crlUrl)).status, 200);
        const closing = ca.close();
        assert.equal(ca.close(), closing, 'a second close() returns the same promise');
        await closing;
      }
      await assert.rejects(stack.getBytes(crlUrl), /ECONNREFUSED/);
      await assert.rejects(stack.get(directoryUrl), /ECONNREFUSED/);
    } finally {
      await stack.stop();
    }
  });
});

describe('test CA options', () => {
  const pebble = { directoryUrl: 'https://127.0.0.1:1/dir', managementUrl: 'https://127.0.0.1:2', caCertificate: '-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n' };
  it('refuses unknown options, empty or bad profiles, an unknown default profile and a missing Pebble CA, before any connection', async () => {
    await assert.rejects(startTestCa({ pebble, profile: 'x' } as never), (e: unknown) => e instanceof InvalidOptionError && e.option === 'profile');
    await assert.rejects(startTestCa({ pebble, profiles: {} }), (e: unknown) => e instanceof InvalidOptionError && e.option === 'profiles');
    await assert.rejects(startTestCa({ pebble, profiles: { a: { lifetimeMs: 10 } } }), (e: unknown) => e instanceof InvalidOptionError && e.option === 'profiles.a.lifetimeMs');
    await assert.rejects(startTestCa({ pebble, defaultProfile: 'gold' }), (e: unknown) => e instanceof InvalidOptionError && e.option === 'defaultProfile');
    await assert.rejects(startTestCa({ pebble, extraChallengeTypes: 'dns-persist-01' as never }), (e: unknown) => e instanceof InvalidOptionError && e.option === 'extraChallengeTypes');
    await assert.rejects(startTestCa({ pebble, extraChallengeTypes: ['Bad Type'] }), (e: unknown) => e instanceof InvalidOptionError && e.option === 'extraChallengeTypes');
    await assert.rejects(startTestCa({ pebble: { ...pebble, caCertificate: undefined } } as never), (e: unknown) => e instanceof InvalidOptionError && e.option === 'pebble.caCertificate');
    await assert.rejects(startTestCa({ pebble: { ...pebble, directoryUrl: 'http://127.0.0.1/dir' } }), (e: unknown) => e instanceof InvalidOptionError && e.option === 'pebble.directoryUrl');
  });
});
