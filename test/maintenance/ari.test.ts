import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import * as x509 from '@peculiar/x509';
import {
  DEFAULT_ARI_RETRY_AFTER_MS,
  ariRetryAt,
  certId,
  fetchRenewalInfo,
  parseRenewalInfo,
  shouldQueryAri,
} from '../../src/acme/ari.js';
import { AbortedError, AcmeProblemError, AcmeUnreachableError, CertificateInvalidError } from '../../src/errors.js';
import { FakeClock } from '../../src/testing/fake-clock.js';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const NOW = Date.UTC(2026, 0, 1);
const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };

/** RFC 9773 §4.1 example: this keyIdentifier and serial give this certID. */
const RFC_AKI_HEX = '69885B6B87464041E1B37B847BA0AE2CDE01C8D4';
const RFC_SERIAL_HEX = '0087654321';
const RFC_CERT_ID = 'aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE';

async function makeCert(serialNumber: string, akiHex?: string): Promise<string> {
  const keys = await crypto.subtle.generateKey(ALG, true, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber,
    subject: 'CN=a.example.test',
    issuer: 'CN=Test CA',
    notBefore: new Date(NOW),
    notAfter: new Date(NOW + 90 * 24 * HOUR),
    signingAlgorithm: ALG,
    publicKey: keys.publicKey,
    signingKey: keys.privateKey,
    extensions: akiHex ? [new x509.AuthorityKeyIdentifierExtension(akiHex)] : [],
  });
  return cert.toString('pem');
}

describe('certId', () => {
  let rfcCert: string;
  before(async () => {
    rfcCert = await makeCert(RFC_SERIAL_HEX, RFC_AKI_HEX);
  });

  test('matches the RFC 9773 example (AKI 69:88:5B:..., serial 00:87:65:43:21)', () => {
    assert.equal(certId(rfcCert), RFC_CERT_ID);
  });

  test('uses the leaf of a chain, and accepts DER and PEM bytes', async () => {
    const intermediate = await makeCert('01', 'AABBCC');
    assert.equal(certId(`${rfcCert}\n${intermediate}`), RFC_CERT_ID);
    assert.equal(certId(Buffer.from(rfcCert)), RFC_CERT_ID);
    const der = Buffer.from(rfcCert.replace(/-----[^-]+-----|\s/g, ''), 'base64');
    assert.equal(certId(der), RFC_CERT_ID);
  });

  test('a serial without the high bit set has no leading zero', async () => {
    const pem = await makeCert('0102', 'C0FFEE');
    assert.equal(certId(pem), `${Buffer.from('C0FFEE', 'hex').toString('base64url')}.${Buffer.from('0102', 'hex').toString('base64url')}`);
  });

  test('no Authority Key Identifier or no certificate: CertificateInvalidError', async () => {
    assert.throws(() => certId('not a certificate'), CertificateInvalidError);
    const noAki = await makeCert('05');
    assert.throws(() => certId(noAki), (e: unknown) => e instanceof CertificateInvalidError && /Authority Key Identifier/.test(e.message));
  });
});

describe('parseRenewalInfo', () => {
  const window = { start: '2026-02-01T00:00:00Z', end: '2026-02-03T00:00:00Z' };

  test('a valid window, explanationURL kept, Retry-After applied', () => {
    const info = parseRenewalInfo({ suggestedWindow: window, explanationURL: 'https://ca.example/why' }, '7200', NOW);
    assert.deepEqual(info, {
      windowStart: Date.UTC(2026, 1, 1),
      windowEnd: Date.UTC(2026, 1, 3),
      explanationUrl: 'https://ca.example/why',
      retryAfter: NOW + 2 * HOUR,
      retryAfterMs: 2 * HOUR,
    });
  });

  test('fractional seconds and offsets are RFC 3339', () => {
    const info = parseRenewalInfo({ suggestedWindow: { start: '2026-02-01T01:00:00.123+01:00', end: '2026-02-01t02:00:00z' } }, null, NOW);
    assert.equal(info?.windowStart, Date.UTC(2026, 1, 1, 0, 0, 0, 123));
    assert.equal(info?.windowEnd, Date.UTC(2026, 1, 1, 2));
  });

  test('inverted, empty, malformed or missing windows are no answer', () => {
    assert.equal(parseRenewalInfo({ suggestedWindow: { start: window.end, end: window.start } }, null, NOW), undefined);
    assert.equal(parseRenewalInfo({ suggestedWindow: { start: window.start, end: window.start } }, null, NOW), undefined);
    assert.equal(parseRenewalInfo({ suggestedWindow: { start: 'tomorrow', end: window.end } }, null, NOW), undefined);
    assert.equal(parseRenewalInfo({ suggestedWindow: { start: 1767225600, end: window.end } }, null, NOW), undefined);
    assert.equal(parseRenewalInfo({ suggestedWindow: { start: '2026-02-01', end: window.end } }, null, NOW), undefined);
    assert.equal(parseRenewalInfo({}, null, NOW), undefined);
    assert.equal(parseRenewalInfo('nope', null, NOW), undefined);
  });

  test('a non-http explanationURL is dropped', () => {
    const info = parseRenewalInfo({ suggestedWindow: window, explanationURL: 'javascript:alert(1)' }, null, NOW);
    assert.ok(info);
    assert.equal('explanationUrl' in info, false);
  });
});

describe('ariRetryAt', () => {
  test('seconds, clamped to [1 minute, 1 day]', () => {
    assert.equal(ariRetryAt('7200', NOW), NOW + 2 * HOUR);
    assert.equal(ariRetryAt('10', NOW), NOW + MINUTE);
    assert.equal(ariRetryAt('0', NOW), NOW + MINUTE);
    assert.equal(ariRetryAt('999999', NOW), NOW + 24 * HOUR);
  });

  test('HTTP-date form, clamped too', () => {
    assert.equal(ariRetryAt(new Date(NOW + 3 * HOUR).toUTCString(), NOW), NOW + 3 * HOUR);
    assert.equal(ariRetryAt(new Date(NOW - HOUR).toUTCString(), NOW), NOW + MINUTE);
    assert.equal(ariRetryAt(new Date(NOW + 10 * 24 * HOUR).toUTCString(), NOW), NOW + 24 * HOUR);
    // The obsolete forms RFC 9110 still requires recipients to accept (2026-01-01 is a Thursday).
    assert.equal(ariRetryAt('Thursday, 01-Jan-26 02:00:00 GMT', NOW), NOW + 2 * HOUR);
    assert.equal(ariRetryAt('Thu Jan  1 02:00:00 2026', NOW), NOW + 2 * HOUR);
  });

  test('absent or unreadable: 6 hours', () => {
    assert.equal(ariRetryAt(undefined, NOW), NOW + DEFAULT_ARI_RETRY_AFTER_MS);
    assert.equal(ariRetryAt(null, NOW), NOW + 6 * HOUR);
    assert.equal(ariRetryAt('soon', NOW), NOW + 6 * HOUR);
    assert.equal(ariRetryAt('-5', NOW), NOW + 6 * HOUR);
  });
});

describe('shouldQueryAri', () => {
  test('not for an expired or replaced certificate, not before Retry-After', () => {
    const notAfter = NOW + 30 * 24 * HOUR;
    assert.equal(shouldQueryAri({ notAfter }, NOW), true);
    assert.equal(shouldQueryAri({ notAfter }, notAfter), false);
    assert.equal(shouldQueryAri({ notAfter, replaced: true }, NOW), false);
    assert.equal(shouldQueryAri({ notAfter, ariRetryAfter: NOW + 1 }, NOW), false);
    assert.equal(shouldQueryAri({ notAfter, ariRetryAfter: NOW }, NOW), true);
  });
});

describe('fetchRenewalInfo against a local HTTP server', () => {
  let server: Server;
  let base: string;
  let pem: string;
  const requests: { method: string | undefined; url: string | undefined }[] = [];
  let mode: 'ok' | 'malformed' | 'hang' = 'ok';
  let onRequest: (() => void) | undefined;
  /** The certificates are valid in 2026-01: every call runs on a clock set then. */
  const clock = new FakeClock(NOW);

  before(async () => {
    pem = await makeCert(RFC_SERIAL_HEX, RFC_AKI_HEX);
    server = createServer((req, res) => {
      requests.push({ method: req.method, url: req.url });
      onRequest?.();
      if (mode === 'hang') return; // never answers
      if (req.url !== `/acme/renewal-info/${RFC_CERT_ID}`) {
        res.writeHead(404, { 'content-type': 'application/problem+json' });
        res.end(JSON.stringify({ type: 'urn:ietf:params:acme:error:malformed', detail: 'unknown certificate' }));
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json', 'retry-after': '21600' });
      res.end(
        mode === 'malformed'
          ? JSON.stringify({ suggestedWindow: { start: '2026-02-03T00:00:00Z', end: '2026-02-01T00:00:00Z' } })
          : JSON.stringify({
              suggestedWindow: { start: '2026-02-01T00:00:00Z', end: '2026-02-03T00:00:00Z' },
              explanationURL: 'https://ca.example/notice',
            }),
      );
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/acme/renewal-info`;
  });

  after(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  test('a plain GET of <base>/<certID> returns the validated window', async () => {
    mode = 'ok';
    const info = await fetchRenewalInfo(`${base}/`, pem, { clock });
    assert.deepEqual(info, {
      windowStart: Date.UTC(2026, 1, 1),
      windowEnd: Date.UTC(2026, 1, 3),
      explanationUrl: 'https://ca.example/notice',
      retryAfter: NOW + 6 * HOUR,
      retryAfterMs: 6 * HOUR,
    });
    assert.deepEqual(requests.at(-1), { method: 'GET', url: `/acme/renewal-info/${RFC_CERT_ID}` });
  });

  test('an inverted window yields undefined (lifetime rule)', async () => {
    mode = 'malformed';
    const count = requests.length;
    assert.equal(await fetchRenewalInfo(base, pem, { clock }), undefined);
    assert.equal(requests.length, count + 1, 'the CA was asked');
  });

  test('an HTTP error is an AcmeProblemError with the status', async () => {
    mode = 'ok';
    const other = await makeCert('77', RFC_AKI_HEX);
    await assert.rejects(fetchRenewalInfo(base, other, { clock }), (e: unknown) => e instanceof AcmeProblemError && e.status === 404 && e.shortType === 'malformed');
  });

  test('abort while the server hangs: AbortedError', async () => {
    mode = 'hang';
    const controller = new AbortController();
    const arrived = new Promise<void>((resolve) => {
      onRequest = resolve;
    });
    const pending = fetchRenewalInfo(base, pem, { signal: controller.signal, clock });
    // Abort once the request has reached the server.
    await arrived;
    onRequest = undefined;
    controller.abort();
    await assert.rejects(pending, AbortedError);
    mode = 'ok';
  });

  test('an expired certificate makes no request', async () => {
    const count = requests.length;
    const later = new FakeClock(NOW + 91 * 24 * HOUR);
    assert.equal(await fetchRenewalInfo(base, pem, { clock: later }), undefined);
    assert.equal(requests.length, count);
  });

  test('a refused connection is AcmeUnreachableError', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    await assert.rejects(fetchRenewalInfo(`http://127.0.0.1:${port}/ari`, pem, { clock }), AcmeUnreachableError);
  });
});
