/** leafValidity (a DER walk) agrees with node:crypto's full X.509 parse, and refuses what it cannot read. */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { describe, it } from 'node:test';
import { leafValidity } from '../../src/storage/certificates.js';
import { selfSignedCertificate } from '../helpers/certs.js';
import { createTestCa, createTestLeaf } from '../helpers/tls-certs.js';

describe('leafValidity', () => {
  it('reads the same dates as X509Certificate, UTCTime and GeneralizedTime, leaf of a chain', async () => {
    const ca = await createTestCa();
    const cases = [
      (await selfSignedCertificate(['self.test'], 1)).certPem,
      // 2050 and later are GeneralizedTime (RFC 5280 4.1.2.5); 1999 is a UTCTime year above 50.
      (await createTestLeaf(ca, { names: ['far.test'], notBefore: new Date(Date.UTC(1999, 5, 1, 12, 0, 7)), notAfter: new Date(Date.UTC(2051, 0, 2, 3, 4, 5)) })).chainPem,
      (await createTestLeaf(ca, { names: ['chain.test'] })).chainPem,
    ];
    for (const pem of cases) {
      const x509 = new X509Certificate(pem);
      const { notBefore, notAfter } = leafValidity(pem);
      assert.equal(notBefore.getTime(), Date.parse(x509.validFrom));
      assert.equal(notAfter.getTime(), Date.parse(x509.validTo));
    }
    const far = leafValidity(cases[1]!);
    assert.equal(far.notBefore.toISOString(), '1999-06-01T12:00:07.000Z');
    assert.equal(far.notAfter.toISOString(), '2051-01-02T03:04:05.000Z');
  });

  it('throws ERR_CERTIFICATE_INVALID for garbage, truncation and a PEM that is no certificate', async () => {
    const { certPem } = await selfSignedCertificate(['t.test']);
    const body = certPem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
    const truncated = `-----BEGIN CERTIFICATE-----\n${body.slice(0, 40)}\n-----END CERTIFICATE-----\n`;
    for (const pem of ['', 'not a pem', truncated, '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n']) {
      assert.throws(() => leafValidity(pem), { code: 'ERR_CERTIFICATE_INVALID' });
    }
  });
});
