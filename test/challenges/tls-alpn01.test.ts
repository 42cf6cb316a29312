import assert from 'node:assert/strict';
import { webcrypto, X509Certificate } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import tls, { type SecureContext } from 'node:tls';
import * as x509 from '@peculiar/x509';
import acme from 'acme-client';
import { parseIdentifier } from '../../src/names.js';
import { challengeServerName, TlsAlpn01Solver, TlsAlpnChallengeStore } from '../../src/challenges/tls-alpn01.js';
import { createAcmeAlpnCallback, createAcmeSniCallback, isAcmeTlsAlpnOffer } from '../../src/tls/alpn-challenge.js';
import type { ChallengeContext } from '../../src/challenges/types.js';

const ACME_IDENTIFIER_OID = '1.3.6.1.5.5.7.1.31';
const KEY_AUTH = 'tokenTLS.thumbprintABC';

function challenge(name: string, keyAuthorization = KEY_AUTH, token = 'tokenTLS'): ChallengeContext {
  return { identifier: parseIdentifier(name), type: 'tls-alpn-01', token, keyAuthorization, issuerKey: 'pebble' };
}

interface Handshake {
  certificate: X509Certificate | undefined;
  protocol: string | false | null;
}

/** Connects, completes (or fails) the handshake and reports the certificate the server presented. */
function handshake(port: number, servername: string, alpn: string[] | undefined): Promise<Handshake> {
  return new Promise((resolve, reject) => {
    const options: tls.ConnectionOptions = { host: '127.0.0.1', port, servername, rejectUnauthorized: false };
    if (alpn) options.ALPNProtocols = alpn;
    const socket = tls.connect(options, () => {
      const result = { certificate: socket.getPeerX509Certificate(), protocol: socket.alpnProtocol };
      socket.end();
      resolve(result);
    });
    socket.on('error', reject);
  });
}

function hasChallengeExtension(cert: X509Certificate | undefined, keyAuthorization: string): boolean {
  if (!cert) return false;
  const parsed = new x509.X509Certificate(cert.raw);
  if (!parsed.getExtension(ACME_IDENTIFIER_OID)) return false;
  return acme.crypto.isAlpnCertificateAuthorizationValid(cert.toString(), keyAuthorization);
}

async function ordinaryContext(name: string): Promise<SecureContext> {
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      name: `CN=${name}`,
      keys,
      signingAlgorithm: alg,
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + 3_600_000),
      extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: name }])],
    },
    webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0],
  );
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)).toString('base64');
  const keyPem = `-----BEGIN PRIVATE KEY-----\n${pkcs8.match(/.{1,64}/g)?.join('\n')}\n-----END PRIVATE KEY-----\n`;
  return tls.createSecureContext({ key: keyPem, cert: cert.toString('pem') });
}

describe('isAcmeTlsAlpnOffer', () => {
  test('true only for exactly [acme-tls/1]', () => {
    assert.equal(isAcmeTlsAlpnOffer(['acme-tls/1']), true);
    assert.equal(isAcmeTlsAlpnOffer(['h2', 'acme-tls/1']), false);
    assert.equal(isAcmeTlsAlpnOffer(['acme-tls/1', 'http/1.1']), false);
    assert.equal(isAcmeTlsAlpnOffer([]), false);
    assert.equal(isAcmeTlsAlpnOffer(undefined), false);
  });
});

describe('challengeServerName', () => {
  test('a DNS identifier is its own name; IP identifiers use the reverse-mapping name', () => {
    assert.equal(challengeServerName(parseIdentifier('Example.TEST')), 'example.test');
    assert.equal(challengeServerName(parseIdentifier('192.0.2.7')), '7.2.0.192.in-addr.arpa');
    assert.equal(
      challengeServerName(parseIdentifier('2001:db8::1')),
      '1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa',
    );
  });
});

describe('TLS-ALPN-01 composed into an ordinary TLS server', () => {
  const store = new TlsAlpnChallengeStore();
  const solver = new TlsAlpn01Solver({ store });
  const ch = challenge('app.example.test');
  let server: tls.Server;
  let port: number;

  before(async () => {
    const normal = await ordinaryContext('app.example.test');
    const sni = createAcmeSniCallback(store, (_servername, cb) => cb(null, normal));
    server = tls.createServer({
      ALPNCallback: createAcmeAlpnCallback(store, (protocols: string[]) => (protocols.includes('h2') ? 'h2' : protocols[0])) as tls.TlsOptions['ALPNCallback'],
      SNICallback: sni as tls.TlsOptions['SNICallback'],
    });
    server.on('secureConnection', (socket) => socket.end());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
    await solver.present(ch);
  });
  after(async () => {
    await solver.cleanUp(ch);
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  test('ALPN exactly [acme-tls/1] gets the challenge certificate with the acmeIdentifier extension', async () => {
    const result = await handshake(port, 'app.example.test', ['acme-tls/1']);
    assert.equal(result.protocol, 'acme-tls/1');
    assert.ok(hasChallengeExtension(result.certificate, KEY_AUTH));
    assert.equal(result.certificate?.subjectAltName, 'DNS:app.example.test');
  });

  test('[h2, acme-tls/1] gets the ordinary certificate and h2', async () => {
    const result = await handshake(port, 'app.example.test', ['h2', 'acme-tls/1']);
    assert.equal(result.protocol, 'h2');
    assert.equal(hasChallengeExtension(result.certificate, KEY_AUTH), false);
    assert.equal(result.certificate?.subject, 'CN=app.example.test');
  });

  test('a client offering no ALPN gets the ordinary certificate', async () => {
    const result = await handshake(port, 'app.example.test', undefined);
    assert.equal(hasChallengeExtension(result.certificate, KEY_AUTH), false);
    assert.equal(result.certificate?.subject, 'CN=app.example.test');
  });

  test('[acme-tls/1] for a name without a pending challenge is refused, not given any challenge certificate', async () => {
    await assert.rejects(handshake(port, 'other.example.test', ['acme-tls/1']));
  });

  test('after cleanUp the validator no longer gets the challenge certificate', async () => {
    const second = challenge('gone.example.test', 'tok2.thumb', 'tok2');
    await solver.present(second);
    assert.ok(hasChallengeExtension((await handshake(port, 'gone.example.test', ['acme-tls/1'])).certificate, 'tok2.thumb'));
    await solver.cleanUp(second);
    assert.equal(store.has('gone.example.test'), false);
    await assert.rejects(handshake(port, 'gone.example.test', ['acme-tls/1']));
  });
});

describe('TLS-ALPN-01 standalone listener', () => {
  test('opens on present, answers only validators, closes after the last cleanUp', async () => {
    const solver = new TlsAlpn01Solver({ listener: true, port: 0, host: '127.0.0.1' });
    const ch = challenge('standalone.example.test');
    try {
      assert.equal(solver.listenerAddress(), undefined);
      await solver.present(ch);
      const port = solver.listenerAddress()?.port;
      assert.ok(port);
      const validator = await handshake(port, 'standalone.example.test', ['acme-tls/1']);
      assert.ok(hasChallengeExtension(validator.certificate, KEY_AUTH));
      // Ordinary clients never complete a handshake here, so never see the challenge certificate.
      await assert.rejects(handshake(port, 'standalone.example.test', ['h2', 'acme-tls/1']));
      await assert.rejects(handshake(port, 'standalone.example.test', undefined));
      await solver.cleanUp(ch);
      assert.equal(solver.listenerAddress(), undefined);
      assert.equal(solver.store.size, 0);
    } finally {
      await solver.close();
    }
  });
});
