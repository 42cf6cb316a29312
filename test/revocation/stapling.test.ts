/**
 * OCSP stapling through serveHttps(), seen by a real client
 * (`openssl s_client -status`): the good answer the checker cached is
 * stapled; a certificate naming no responder (Let's Encrypt's kind) gets no
 * staple, and no OCSP request is made or logged for it. Must-Staple is
 * never requested.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as x509 from '@peculiar/x509';
import { createKeyAndCsr } from '../../src/acme/csr.js';
import { parseIdentifier } from '../../src/names.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import { serveHttps, type HttpsService } from '../../src/serve-https.js';
import { FakeClock } from '../../src/testing/fake-clock.js';
import { startTestCa, type TestCa } from '../../src/testing/index.js';
import { settle, waitUntil } from '../faults/helpers.js';
import { captureLogger } from '../helpers/logging.js';
import { startPebble, type PebbleHandle } from '../helpers/pebble.js';
import { skipUnlessInstalled } from '../helpers/system.js';
import { opensslSClient } from '../helpers/tls-client.js';

const skip = skipUnlessInstalled('pebble', 'pebble-challtestsrv', 'openssl');
/** id-pe-tlsfeature (RFC 7633), the Must-Staple extension. */
const OID_TLS_FEATURE = '1.3.6.1.5.5.7.1.24';

describe('OCSP stapling (serveHttps, openssl s_client -status)', { skip }, () => {
  let pebble: PebbleHandle;
  let dir: string;
  before(async () => {
    pebble = await startPebble();
    dir = await mkdtemp(join(tmpdir(), 'certkeeper-stapling-'));
  });
  after(async () => {
    await pebble?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function serve(ocsp: boolean, name: string): Promise<{ ca: TestCa; service: HttpsService; clock: FakeClock; logs: () => string; port: number; rootFile: string; close(): Promise<void> }> {
    const clock = new FakeClock(Date.now());
    const ca = await startTestCa({ ocsp, clock, pebble: { directoryUrl: pebble.directoryUrl, managementUrl: pebble.managementUrl, caCertificate: pebble.pebbleCaPem } });
    const { logger, text } = captureLogger('debug');
    const rootFile = join(dir, `${name}.root.pem`);
    await writeFile(rootFile, ca.rootCertificate);
    try {
      const service = await serveHttps([name], (_req, res) => res.end('ok'), {
        ca: ca.directoryUrl,
        caCertificates: ca.caCertificate,
        agreeToTerms: true,
        storage: new MemoryStorage(),
        challenges: { tlsAlpn01: false },
        httpPort: pebble.httpPort,
        httpsPort: 0,
        host: '127.0.0.1',
        http2: false,
        logger,
        clock,
      });
      const port = (service.httpsServer.address() as AddressInfo).port;
      return { ca, service, clock, logs: text, port, rootFile, close: async () => {
        await service.close();
        await ca.close();
      } };
    } catch (error) {
      await ca.close();
      throw error;
    }
  }

  test('the cached good answer is stapled; handshakes fetch nothing', async () => {
    const name = 'stapled.example.test';
    const s = await serve(true, name);
    try {
      const before = await opensslSClient(s.port, name, s.rootFile, ['-status']);
      assert.match(before, /Verify return code: 0 \(ok\)/);
      assert.match(before, /OCSP response: no response sent/, 'nothing cached before the first check');
      await s.clock.advance(0);
      await waitUntil(() => s.ca.requests('ocsp') === 1, 'the first OCSP request');
      await settle(100);
      const stapled = await opensslSClient(s.port, name, s.rootFile, ['-status']);
      assert.match(stapled, /OCSP Response Status: successful/);
      assert.match(stapled, /Cert Status: good/);
      assert.match(stapled, /Verify return code: 0 \(ok\)/);
      await opensslSClient(s.port, name, s.rootFile, ['-status']);
      assert.equal(s.ca.requests('ocsp'), 1, 'handshakes are answered from memory');
    } finally {
      await s.close();
    }
  });

  test('a certificate naming no OCSP responder: no request, no staple, no log line about OCSP; Must-Staple never requested', async () => {
    const name = 'plain.example.test';
    const s = await serve(false, name);
    try {
      await s.clock.advance(0);
      await waitUntil(() => s.ca.requests('crl') === 1, 'the CRL check (the certificate names a CRL only)');
      await settle(200);
      const answer = await opensslSClient(s.port, name, s.rootFile, ['-status']);
      assert.match(answer, /OCSP response: no response sent/);
      assert.match(answer, /Verify return code: 0 \(ok\)/);
      await s.clock.advance(2 * 3_600_000);
      await settle(200);
      assert.equal(s.ca.requests('ocsp'), 0);
      assert.deepEqual(s.logs().split('\n').filter((line) => /ocsp|stapl/i.test(line)), [], 'no log line about OCSP');
      const leaf = new x509.X509Certificate((await opensslSClient(s.port, name, s.rootFile)).match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/)?.[0] as string);
      assert.equal(leaf.getExtension(OID_TLS_FEATURE), null, 'the served certificate has no TLS feature extension');
    } finally {
      await s.close();
    }
  });

  test('the CSR certkeeper sends has no TLS feature (Must-Staple) extension', async () => {
    const { csr } = await createKeyAndCsr([parseIdentifier('csr.example.test')], 'ecdsa-p256');
    const request = new x509.Pkcs10CertificateRequest(csr.toString());
    assert.ok(request.getExtension('2.5.29.17'), 'the CSR carries its extensions (subjectAltName)');
    assert.equal(request.getExtension(OID_TLS_FEATURE), null);
  });
});
