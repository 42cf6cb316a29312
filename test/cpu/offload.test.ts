import assert from 'node:assert/strict';
import { KeyObject, X509Certificate, webcrypto } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { describe, test } from 'node:test';
import * as x509 from '@peculiar/x509';
import { CpuOffload } from '../../src/cpu/offload.js';
import { CertificateInvalidError, ClosedError } from '../../src/errors.js';
import { parseIdentifier } from '../../src/names.js';
import { silentLogger, captureLogger } from '../helpers/logging.js';

const identifiers = [parseIdentifier('offload.example.test'), parseIdentifier('www.offload.example.test')];

async function issuingCa(): Promise<{ certDer: Uint8Array; key: webcrypto.CryptoKey }> {
  const alg = { name: 'ECDSA', namedCurve: 'P-256' };
  const keys = (await webcrypto.subtle.generateKey(alg, false, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: '01',
      name: 'CN=offload test CA',
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + 3_600_000),
      keys,
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
      extensions: [new x509.BasicConstraintsExtension(true, undefined, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true)],
    },
    webcrypto as never,
  );
  return { certDer: new Uint8Array(cert.rawData), key: keys.privateKey };
}

describe('CpuOffload', () => {
  test('makes a key and CSR and signs a leaf on its worker thread', async () => {
    const offload = new CpuOffload({ logger: silentLogger() });
    try {
      const { keyPem, key, csr } = await offload.keyAndCsr(identifiers, 'ecdsa-p256');
      assert.ok(Buffer.isBuffer(csr), 'the CSR comes back as a Buffer');
      assert.ok(key instanceof KeyObject && key.type === 'private' && key.asymmetricKeyType === 'ec');
      assert.match(keyPem, /^-----BEGIN PRIVATE KEY-----/);
      const request = new x509.Pkcs10CertificateRequest(csr.toString());
      assert.ok(await request.verify(webcrypto as never), 'the CSR is signed by its key');
      assert.deepEqual(offload.stats, { tasks: 1, inThread: false, workerRunning: true });

      const ca = await issuingCa();
      const der = await offload.signLeaf({
        csr,
        identifiers,
        serialNumber: '0a0b0c',
        notBefore: Date.now() - 1000,
        notAfter: Date.now() + 3_600_000,
        issuerCertificate: ca.certDer,
        signingKey: ca.key,
      });
      const leaf = new X509Certificate(Buffer.from(der));
      assert.ok(leaf.checkPrivateKey(key), 'the leaf certifies the key made on the worker');
      assert.ok(leaf.verify(new X509Certificate(Buffer.from(ca.certDer)).publicKey), 'signed by the CA key passed to the worker');
      assert.equal(leaf.subjectAltName, 'DNS:offload.example.test, DNS:www.offload.example.test');
      assert.equal(offload.stats.tasks, 2);
    } finally {
      await offload.close();
    }
  });

  test('an error on the worker comes back with its class and code', async () => {
    const offload = new CpuOffload({ logger: silentLogger() });
    try {
      const ca = await issuingCa();
      await assert.rejects(
        offload.signLeaf({ csr: Buffer.from('not a CSR'), identifiers, serialNumber: '01', notBefore: 0, notAfter: 1, issuerCertificate: ca.certDer, signingKey: ca.key }),
        (e: unknown) => e instanceof CertificateInvalidError && e.code === 'ERR_CERTIFICATE_INVALID' && /could not be parsed/.test(e.message),
      );
    } finally {
      await offload.close();
    }
  });

  test('runs the tasks on the calling thread when no worker can start', async () => {
    const { logger, text } = captureLogger();
    const offload = new CpuOffload({ logger, spawn: () => new Worker('throw new Error("no worker here")', { eval: true }) });
    try {
      const { key, csr } = await offload.keyAndCsr(identifiers, 'ecdsa-p384');
      assert.equal(key.asymmetricKeyDetails?.namedCurve, 'secp384r1');
      assert.ok(await new x509.Pkcs10CertificateRequest(csr.toString()).verify(webcrypto as never));
      assert.equal(offload.stats.inThread, true);
      await offload.keyAndCsr(identifiers, 'ecdsa-p256');
      assert.equal(offload.stats.tasks, 2);
      assert.equal(text().match(/cannot start the cpu worker/g)?.length, 1, 'warned once');
    } finally {
      await offload.close();
    }
  });

  test('close() terminates the worker, rejects what is still running, and is idempotent', async () => {
    const offload = new CpuOffload({ logger: silentLogger() });
    await offload.keyAndCsr(identifiers, 'ecdsa-p256');
    const running = assert.rejects(offload.keyAndCsr(identifiers, 'rsa4096'), ClosedError);
    await Promise.all([offload.close(), offload.close()]);
    await running;
    assert.equal(offload.stats.workerRunning, false);
    await assert.rejects(offload.keyAndCsr(identifiers, 'ecdsa-p256'), ClosedError);
  });
});
