/**
 * What a CRL must be to be believed, on certificates and CRLs made here:
 * signed by the certificate's issuer, naming that issuer, complete, current.
 * Plus the option's validation.
 */
import assert from 'node:assert/strict';
import { webcrypto } from 'node:crypto';
import { before, describe, it } from 'node:test';
import * as x509 from '@peculiar/x509';
import { resolveConfig } from '../../src/config/index.js';
import { DEFAULT_REVOCATION_CHECK_INTERVAL_MS } from '../../src/defaults.js';
import { InvalidOptionError } from '../../src/errors.js';
import { revocationTarget, type RevocationTarget } from '../../src/revocation/certificate-info.js';
import { parseCrl } from '../../src/revocation/crl.js';
import { RevocationDataError } from '../../src/revocation/errors.js';
import { ocspRequest, parseOcspResponse } from '../../src/revocation/ocsp.js';
import { silentLogger } from '../helpers/logging.js';

// Node's webcrypto is the Crypto object @peculiar/x509 expects.
const crypto: webcrypto.Crypto = webcrypto;
type CryptoKeyPair = webcrypto.CryptoKeyPair;
const ECDSA = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const HOUR = 3_600_000;
const CRL_URL = 'http://crl.example.test/1.crl';

interface Ca {
  cert: x509.X509Certificate;
  keys: CryptoKeyPair;
}

async function makeCa(name: string): Promise<Ca> {
  const keys = (await crypto.subtle.generateKey(ECDSA, true, ['sign', 'verify'])) as CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    { serialNumber: '01', name: `CN=${name}`, notBefore: new Date(Date.now() - HOUR), notAfter: new Date(Date.now() + 24 * HOUR), keys, signingAlgorithm: ECDSA, extensions: [new x509.BasicConstraintsExtension(true, 0, true)] },
    crypto,
  );
  return { cert, keys };
}

async function crl(ca: Ca, options: { issuer?: Ca; thisUpdate?: number; nextUpdate?: number; serials?: string[] } = {}): Promise<Buffer> {
  const signer = options.issuer ?? ca;
  const generated = await x509.X509CrlGenerator.create(
    {
      issuer: ca.cert.subject,
      thisUpdate: new Date(options.thisUpdate ?? Date.now() - 60_000),
      nextUpdate: new Date(options.nextUpdate ?? Date.now() + HOUR),
      signingKey: signer.keys.privateKey,
      signingAlgorithm: ECDSA,
      entries: (options.serials ?? []).map((serialNumber) => ({ serialNumber, revocationDate: new Date(Date.now() - 30_000), reason: x509.X509CrlReason.keyCompromise })),
    },
    crypto,
  );
  return Buffer.from(generated.rawData);
}

describe('revocation data checks', () => {
  let ca: Ca;
  let other: Ca;
  let target: RevocationTarget;
  let leafPem: string;
  before(async () => {
    ca = await makeCa('Test Issuer');
    other = await makeCa('Other Issuer');
    const leafKeys = (await crypto.subtle.generateKey(ECDSA, true, ['sign', 'verify'])) as CryptoKeyPair;
    const leaf = await x509.X509CertificateGenerator.create(
      {
        serialNumber: '00ab12',
        subject: 'CN=leaf.example.test',
        issuer: ca.cert.subject,
        notBefore: new Date(Date.now() - HOUR),
        notAfter: new Date(Date.now() + 24 * HOUR),
        publicKey: leafKeys.publicKey,
        signingKey: ca.keys.privateKey,
        signingAlgorithm: ECDSA,
        extensions: [new x509.CRLDistributionPointsExtension([CRL_URL]), new x509.AuthorityInfoAccessExtension({ ocsp: ['http://ocsp.example.test'] })],
      },
      crypto,
    );
    leafPem = leaf.toString('pem');
    target = revocationTarget(`${leafPem}\n${ca.cert.toString('pem')}`) as RevocationTarget;
  });

  it('reads the serial, the CRL distribution point and the OCSP responder from the leaf', () => {
    assert.equal(target.serialNumber, 'ab12');
    assert.deepEqual(target.crlUrls, [CRL_URL]);
    assert.deepEqual(target.ocspUrls, ['http://ocsp.example.test']);
  });

  it('a chain without its issuer (or with the wrong one) gives nothing to check', async () => {
    assert.equal(revocationTarget(leafPem), undefined);
    assert.equal(revocationTarget(`${leafPem}\n${other.cert.toString('pem')}`), undefined);
  });

  it('accepts a good CRL and finds a revoked serial with its reason', async () => {
    const parsed = parseCrl(await crl(ca, { serials: ['ab12', '77'] }), target.issuer, CRL_URL, Date.now());
    assert.deepEqual(parsed.revoked.get('ab12')?.reason, 1);
    assert.ok(parsed.nextUpdate && parsed.nextUpdate > Date.now());
    assert.equal(parseCrl(await crl(ca), target.issuer, CRL_URL, Date.now()).revoked.size, 0);
  });

  const rejected = (reason: RegExp) => (error: unknown) => error instanceof RevocationDataError && error.code === 'ERR_REVOCATION_INVALID' && reason.test(error.message);

  it('rejects a CRL signed by another key, one for another issuer, an out-of-date one and garbage', async () => {
    assert.throws(() => parseCrl(Buffer.from(''), target.issuer, CRL_URL, Date.now()), rejected(/not a DER CRL/));
    assert.throws(() => parseCrl(Buffer.from([0x30, 0x03, 0x02, 0x01, 0x01]), target.issuer, CRL_URL, Date.now()), rejected(/not a DER CRL/));
    const signedByOther = await crl(ca, { issuer: other, serials: ['ab12'] });
    assert.throws(() => parseCrl(signedByOther, target.issuer, CRL_URL, Date.now()), rejected(/signature does not verify/));
    // Signed with the right key but naming another issuer.
    const otherName = await x509.X509CrlGenerator.create({ issuer: other.cert.subject, thisUpdate: new Date(Date.now() - 1000), nextUpdate: new Date(Date.now() + HOUR), signingKey: ca.keys.privateKey, signingAlgorithm: ECDSA }, crypto);
    assert.throws(() => parseCrl(Buffer.from(otherName.rawData), target.issuer, CRL_URL, Date.now()), rejected(/another CA/));
    const stale = await crl(ca, { thisUpdate: Date.now() - 3 * HOUR, nextUpdate: Date.now() - HOUR });
    assert.throws(() => parseCrl(stale, target.issuer, CRL_URL, Date.now()), rejected(/out of date/));
  });

  it('builds a one-certificate OCSP request and refuses an answer that is not a successful, signed one', () => {
    const request = ocspRequest(target);
    assert.equal(request[0], 0x30);
    assert.ok(request.includes(Buffer.from([0xab, 0x12])), 'the serial is in the CertID');
    // tryLater (3), as an overloaded responder answers.
    assert.throws(() => parseOcspResponse(Buffer.from([0x30, 0x03, 0x0a, 0x01, 0x03]), target, 'http://ocsp.example.test', Date.now()), rejected(/tryLater/));
    assert.throws(() => parseOcspResponse(Buffer.from('nope'), target, 'http://ocsp.example.test', Date.now()), rejected(/not a DER OCSP response/));
  });

  it('revocationCheck: defaults, explicit false, and refused values', () => {
    const on = resolveConfig({ logger: silentLogger() }).revocationCheck;
    assert.ok(on && on.intervalMs === DEFAULT_REVOCATION_CHECK_INTERVAL_MS && on.crl && on.ocsp && on.stapling);
    assert.equal(resolveConfig({ logger: silentLogger(), revocationCheck: false }).revocationCheck, false);
    const given = { intervalMs: 60_000, ocsp: false };
    const resolved = resolveConfig({ logger: silentLogger(), revocationCheck: given }).revocationCheck;
    assert.ok(resolved && resolved.intervalMs === 60_000 && !resolved.ocsp && resolved.crl);
    assert.deepEqual(given, { intervalMs: 60_000, ocsp: false }, "the caller's object is untouched");
    for (const bad of [{ intervalMs: 0 }, { retries: -1 }, { crl: 'yes' }, { every: 1 }, 'on']) {
      assert.throws(() => resolveConfig({ logger: silentLogger(), revocationCheck: bad as never }), InvalidOptionError);
    }
  });
});
