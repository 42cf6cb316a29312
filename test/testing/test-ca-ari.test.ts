import assert from 'node:assert/strict';
import { X509Certificate, webcrypto } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import * as x509 from '@peculiar/x509';
import acme from 'acme-client';
import { certId } from '../../src/acme/ari.js';
import { AcmeIssuer } from '../../src/issuers/acme.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import { FakeClock } from '../../src/testing/index.js';
import { skipUnlessInstalled } from '../helpers/system.js';
import { signedPost, startStack, type Stack } from './stack.js';

const skip = skipUnlessInstalled('pebble', 'pebble-challtestsrv');
const HOUR = 3_600_000;
const ACME = 'urn:ietf:params:acme:error:';

describe('test CA: renewalInfo, replaces and revocation in front of a real Pebble', { skip }, () => {
  let stack: Stack;
  // Certificates are dated on the injected clock: a fixed time makes every window exact.
  const clock = new FakeClock(Date.UTC(2026, 11, 3, 12, 0, 0));
  const issuers: AcmeIssuer[] = [];
  const issuer = (): AcmeIssuer => {
    const made = new AcmeIssuer({ directoryUrl: stack.ca.directoryUrl, caCertificates: stack.ca.caCertificate, agreeToTerms: true, storage: new MemoryStorage(), solvers: { 'http-01': stack.solver }, clock });
    issuers.push(made);
    return made;
  };
  before(async () => {
    stack = await startStack({ clock, renewalInfoRetryAfterSeconds: 3600 });
  });
  after(async () => {
    await Promise.all(issuers.map((i) => i.close()));
    await stack?.stop();
  });

  it('answers renewalInfo per certificate with Retry-After: a default window at 2/3 of the lifetime, then the one the test sets', async () => {
    const client = await stack.client();
    const { chainPem } = await stack.obtain(client, ['ari.example.test'], { profile: 'shortlived' });
    const id = certId(chainPem);
    assert.equal(stack.ca.certificate(chainPem).certId, id, "the test CA's certID is RFC 9773's, as certkeeper computes it");
    const renewalInfo = (JSON.parse((await stack.get(stack.ca.directoryUrl)).body) as { renewalInfo: string }).renewalInfo;

    const first = await stack.get(`${renewalInfo}/${id}`);
    assert.equal(first.status, 200);
    assert.equal(first.headers['retry-after'], '3600');
    const notBefore = clock.now() - (clock.now() % 1000);
    assert.deepEqual(JSON.parse(first.body), {
      suggestedWindow: { start: new Date(notBefore + (160 * HOUR * 2) / 3).toISOString(), end: new Date(notBefore + 120 * HOUR).toISOString() },
    });

    const start = Date.UTC(2026, 11, 5);
    stack.ca.setRenewalWindow(chainPem, { start, end: start + HOUR, explanationUrl: 'https://ca.example.test/why' });
    const info = await issuer().renewalInfo(chainPem);
    assert.equal(info?.windowStart, start);
    assert.equal(info?.windowEnd, start + HOUR);
    assert.equal(info?.explanationUrl, 'https://ca.example.test/why');
    assert.equal(info?.retryAfter, clock.now() + HOUR, "certkeeper's client read the test CA's Retry-After");

    // Raw GETs: certkeeper's client would (rightly) hold every request to this CA after a 503 with Retry-After.
    stack.ca.injectFault({ endpoint: 'renewalInfo', status: 503, retryAfter: 120 });
    const refused = await stack.get(`${renewalInfo}/${id}`);
    assert.equal(refused.status, 503);
    assert.equal(refused.headers['retry-after'], '120');
    assert.equal((JSON.parse(refused.body) as { type: string }).type, `${ACME}serverInternal`);
    assert.equal((await stack.get(`${renewalInfo}/${id}`)).status, 200, 'the fault answered one request');

    assert.equal((await stack.get(`${renewalInfo}/AAAA.AAAA`)).status, 404, 'a certificate it did not issue');
    assert.equal((await stack.get(`${renewalInfo}/not-a-cert-id`)).status, 400);
    assert.throws(() => stack.ca.setRenewalWindow(chainPem, { start, end: start }), /after window.start/);
  });

  it('moves every window into the past at once in a revocation drill; certificates issued later get normal windows', async () => {
    const client = await stack.client();
    const a = await stack.obtain(client, ['drill-a.example.test']);
    const b = await stack.obtain(client, ['drill-b.example.test'], { profile: 'tlsserver' });
    const before = stack.ca.requests('renewalInfo');
    stack.ca.revocationDrill({ explanationUrl: 'https://ca.example.test/drill' });
    const ari = issuer();
    for (const { chainPem } of [a, b]) {
      const info = await ari.renewalInfo(chainPem);
      assert.ok(info && info.windowEnd < clock.now() && info.windowStart < info.windowEnd, 'window entirely in the past');
      assert.equal(info.explanationUrl, 'https://ca.example.test/drill');
    }
    assert.equal(stack.ca.requests('renewalInfo'), before + 2);
    assert.deepEqual([a, b].map(({ chainPem }) => stack.ca.certificate(chainPem).renewalInfoRequests), [1, 1]);
    assert.ok(stack.ca.certificates().every((c) => c.renewalWindow.end.getTime() < clock.now()), 'every certificate issued so far');
    const later = await stack.obtain(client, ['drill-c.example.test']);
    assert.ok(stack.ca.certificate(later.chainPem).renewalWindow.start.getTime() > clock.now());
  });

  it('accepts replaces, echoes it, and answers alreadyReplaced when the same certificate is replaced twice', async () => {
    const client = await stack.client();
    const old = await stack.obtain(client, ['replace.example.test']);
    const oldId = certId(old.chainPem);
    const renewed = await stack.obtain(client, ['replace.example.test'], { replaces: oldId });
    assert.equal((renewed.order as unknown as { replaces?: string }).replaces, oldId);
    const successor = stack.ca.certificate(renewed.chainPem);
    assert.equal(successor.replaces, oldId);
    assert.equal(stack.ca.certificate(oldId).replacedBy, successor.certId);

    const again = await signedPost(client, 'newOrder', { identifiers: [{ type: 'dns', value: 'replace.example.test' }], replaces: oldId });
    assert.equal(again.status, 409);
    assert.equal((again.data as { type: string }).type, `${ACME}alreadyReplaced`);

    const stranger = await stack.client();
    const foreign = await signedPost(stranger, 'newOrder', { identifiers: [{ type: 'dns', value: 'replace.example.test' }], replaces: successor.certId });
    assert.equal(foreign.status, 403, "another account cannot replace this account's certificate");
    const unrelated = await signedPost(client, 'newOrder', { identifiers: [{ type: 'dns', value: 'other.example.test' }], replaces: successor.certId });
    assert.equal(unrelated.status, 400, 'an order sharing no name with the replaced certificate');
  });

  it('revokes through revokeCert and revoke(): both appear in a CRL signed by the intermediate, with nextUpdate', async () => {
    const client = await stack.client();
    const byAcme = await stack.obtain(client, ['revoke-a.example.test']);
    const byTest = await stack.obtain(client, ['revoke-b.example.test']);
    const kept = await stack.obtain(client, ['revoke-c.example.test']);
    const byCertKey = await stack.obtain(client, ['revoke-d.example.test']);

    const first = await readCrl(stack);
    assert.equal(first.entries.length, 0);
    await client.revokeCertificate(byAcme.chainPem, { reason: 4 });
    await assert.rejects(client.revokeCertificate(byAcme.chainPem), /already revoked/);
    stack.ca.revoke(byTest.chainPem, 1);

    const crl = await readCrl(stack);
    const intermediate = new x509.X509Certificate(stack.ca.intermediateCertificate);
    assert.ok(await crl.verify({ publicKey: intermediate.publicKey }, webcrypto as never), 'the CRL signature verifies against the intermediate');
    assert.equal(crl.issuer, intermediate.subject);
    assert.equal(crl.thisUpdate.getTime(), clock.now() - (clock.now() % 1000));
    assert.equal(crl.nextUpdate?.getTime(), crl.thisUpdate.getTime() + HOUR);
    const serial = (pem: string): string => new X509Certificate(pem).serialNumber.toLowerCase();
    assert.deepEqual(new Map(crl.entries.map((e) => [e.serialNumber.toLowerCase(), e.reason])), new Map([[serial(byAcme.chainPem), 4], [serial(byTest.chainPem), 1]]));
    assert.ok(!crl.entries.some((e) => e.serialNumber.toLowerCase() === serial(kept.chainPem)));
    assert.equal(stack.ca.certificate(byAcme.chainPem).revoked?.reason, 4);
    assert.ok(stack.ca.certificate(byAcme.chainPem).renewalWindow.end.getTime() < clock.now(), 'a revoked certificate is due for renewal at once');

    const other = await stack.client();
    await assert.rejects(other.revokeCertificate(kept.chainPem), /did not sign|neither/i, 'another account may not revoke it');
    assert.equal(stack.ca.certificate(kept.chainPem).revoked, undefined);

    // RFC 8555 §7.6: the certificate's own key may revoke it, signing with its jwk.
    const der = (pem: string): string => new X509Certificate(pem).raw.toString('base64url');
    const withCertKey = new acme.Client({ directoryUrl: stack.ca.directoryUrl, accountKey: byCertKey.keyPem });
    const wrongKey = new acme.Client({ directoryUrl: stack.ca.directoryUrl, accountKey: byTest.keyPem });
    assert.equal((await signedPost(wrongKey, 'revokeCert', { certificate: der(byCertKey.chainPem) }, { jwk: true })).status, 403);
    assert.equal((await signedPost(withCertKey, 'revokeCert', { certificate: der(byCertKey.chainPem), reason: 4 }, { jwk: true })).status, 200);
    assert.equal(stack.ca.certificate(byCertKey.chainPem).revoked?.reason, 4);
  });
});

async function readCrl(stack: Stack): Promise<x509.X509Crl> {
  const before = stack.ca.requests('crl');
  const { status, headers, body } = await stack.getBytes(stack.ca.crlUrl);
  assert.equal(status, 200);
  assert.equal(headers['content-type'], 'application/pkix-crl');
  assert.equal(stack.ca.requests('crl'), before + 1);
  return new x509.X509Crl(body);
}
