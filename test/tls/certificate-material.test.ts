import assert from 'node:assert/strict';
import { createPrivateKey } from 'node:crypto';
import { before, describe, it } from 'node:test';
import { CertificateInvalidError } from '../../src/errors.js';
import { buildMaterial, createContext } from '../../src/tls/certificate-material.js';
import { createTestCa, createTestLeaf, type TestCa, type TestLeaf } from '../helpers/tls-certs.js';

const DAY = 86_400_000;

describe('buildMaterial', () => {
  let ca: TestCa;
  let leaf: TestLeaf;
  before(async () => {
    ca = await createTestCa();
    leaf = await createTestLeaf(ca, { names: ['Example.TEST', '*.example.test', '127.0.0.1'] });
  });

  it('parses names, serial and validity once, normalising DNS names', () => {
    const m = buildMaterial(leaf.chainPem, leaf.keyPem, { managed: true });
    assert.deepEqual([...m.names].sort(), ['*.example.test', '127.0.0.1', 'example.test']);
    assert.equal(m.serialNumber, leaf.serialNumber);
    assert.equal(m.managed, true);
    assert.ok(m.notAfter.getTime() > Date.now());
    assert.match(m.id, /^[0-9A-F:]+$/);
    assert.ok(Object.isFrozen(m));
    assert.ok(createContext(m));
  });

  it('defaults to unmanaged', () => {
    assert.equal(buildMaterial(leaf.chainPem, leaf.keyPem).managed, false);
  });

  it('rejects a key that does not match the certificate', async () => {
    const other = await createTestLeaf(ca, { names: ['other.test'] });
    assert.throws(() => buildMaterial(leaf.chainPem, other.keyPem), (e: unknown) => e instanceof CertificateInvalidError && /does not match/.test(e.message));
  });

  it('rejects a chain out of order', () => {
    const reversed = `${ca.certPem}\n${leaf.leafPem}`;
    // The key matches neither the CA as leaf: use the CA key to reach the chain check.
    assert.throws(() => buildMaterial(reversed, ca.keyPem), (e: unknown) => e instanceof CertificateInvalidError && /out of order/.test(e.message));
  });

  it('rejects an expired and a not-yet-valid certificate, unless validity checking is off', async () => {
    const expired = await createTestLeaf(ca, { names: ['old.test'], notBefore: new Date(Date.now() - 10 * DAY), notAfter: new Date(Date.now() - DAY) });
    assert.throws(() => buildMaterial(expired.chainPem, expired.keyPem), (e: unknown) => e instanceof CertificateInvalidError && /expired/.test(e.message));
    assert.equal(buildMaterial(expired.chainPem, expired.keyPem, { checkValidity: false }).names[0], 'old.test');
    const future = await createTestLeaf(ca, { names: ['new.test'], notBefore: new Date(Date.now() + DAY), notAfter: new Date(Date.now() + 10 * DAY) });
    assert.throws(() => buildMaterial(future.chainPem, future.keyPem), (e: unknown) => e instanceof CertificateInvalidError && /not valid before/.test(e.message));
  });

  it('rejects a truncated or empty certificate file', () => {
    assert.throws(() => buildMaterial(leaf.chainPem.slice(0, 200), leaf.keyPem), CertificateInvalidError);
    assert.throws(() => buildMaterial('', leaf.keyPem), CertificateInvalidError);
    const broken = leaf.leafPem.replace(/\n[A-Za-z0-9+/]{10}/, '\n!!!!!!!!!!');
    assert.throws(() => buildMaterial(broken, leaf.keyPem), CertificateInvalidError);
  });

  it('decrypts an encrypted key once with its passphrase; a wrong one is a typed error without key material', () => {
    const encrypted = createPrivateKey(leaf.keyPem).export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'right' }).toString();
    const m = buildMaterial(leaf.chainPem, encrypted, { passphrase: 'right' });
    assert.doesNotMatch(m.keyPem, /ENCRYPTED/);
    assert.throws(
      () => buildMaterial(leaf.chainPem, encrypted, { passphrase: 'wrong' }),
      (e: unknown) => e instanceof CertificateInvalidError && e.code === 'ERR_CERTIFICATE_INVALID' && /passphrase/.test(e.message) && !e.message.includes('PRIVATE KEY'),
    );
    assert.throws(() => buildMaterial(leaf.chainPem, encrypted), CertificateInvalidError);
  });
});
