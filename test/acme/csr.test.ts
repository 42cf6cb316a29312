import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createPublicKey } from 'node:crypto';
import { describe, it } from 'node:test';
import * as x509 from '@peculiar/x509';
import { csrPublicKeyDer } from '../../src/acme/chain.js';
import { createKeyAndCsr, ipOctets } from '../../src/acme/csr.js';
import type { KeyType } from '../../src/kinds.js';
import type { Identifier } from '../../src/names.js';

const dns = (value: string): Identifier => ({ type: 'dns', value, wildcard: value.startsWith('*.') });
const ip = (value: string): Identifier => ({ type: 'ip', value, wildcard: false });

function opensslVerifies(csrPem: Buffer): boolean | undefined {
  try {
    // Exit status 0: the self-signature verified.
    execFileSync('openssl', ['req', '-verify', '-noout'], { input: csrPem, stdio: ['pipe', 'pipe', 'pipe'] });
    return true;
  } catch (error) {
    if ((error as { code?: string }).code === 'ENOENT') return undefined;
    return false;
  }
}

describe('CSR (DER on node:crypto)', () => {
  const cases: [KeyType, Identifier[], string | undefined, string, number][] = [
    ['ecdsa-p256', [dns('a.example.test'), dns('*.b.example.test')], 'a.example.test', '1.2.840.10045.4.3.2', x509.KeyUsageFlags.digitalSignature],
    ['ecdsa-p384', [ip('2001:db8::1'), ip('192.0.2.7')], undefined, '1.2.840.10045.4.3.3', x509.KeyUsageFlags.digitalSignature],
    ['rsa2048', [dns(`${'x'.repeat(60)}.example.test`)], undefined, '1.2.840.113549.1.1.11', x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment],
  ];
  for (const [keyType, identifiers, cn, sigOid, usages] of cases) {
    it(`${keyType}: signed, names in the SAN, key usages, CN only when it fits`, async () => {
      const { csr, keyPem, key } = await createKeyAndCsr(identifiers, keyType);
      assert.match(csr.toString(), /^-----BEGIN CERTIFICATE REQUEST-----\n/);
      assert.match(keyPem, /^-----BEGIN PRIVATE KEY-----\n/);
      const request = new x509.Pkcs10CertificateRequest(csr.toString());
      assert.ok(await request.verify(), 'self-signature verifies');
      assert.equal(request.signatureAlgorithm && (request as unknown as { asn: { signatureAlgorithm: { algorithm: string } } }).asn.signatureAlgorithm.algorithm, sigOid);
      assert.equal(request.subject, cn === undefined ? '' : `CN=${cn}`);
      const ext = (oid: string): ArrayBuffer => {
        const found = request.extensions.find((e) => e.type === oid);
        assert.ok(found, `extension ${oid}`);
        return found.rawData;
      };
      const san = new x509.SubjectAlternativeNameExtension(ext('2.5.29.17'));
      assert.deepEqual(san.names.items.map((n) => [n.type, n.value]), identifiers.map((id) => [id.type, id.value]));
      assert.equal(new x509.KeyUsagesExtension(ext('2.5.29.15')).usages, usages);
      // The CSR's key is the returned key, and chain.ts reads it back from the DER.
      const spki = createPublicKey(key).export({ type: 'spki', format: 'der' });
      assert.ok(csrPublicKeyDer(csr).equals(spki));
      assert.ok(csrPublicKeyDer(Buffer.from(request.rawData)).equals(spki), 'DER input too');
      assert.notEqual(opensslVerifies(csr), false, 'openssl req -verify accepts it');
    });
  }

  it('encodes IPv4, IPv6 and IPv4-mapped IPv6 addresses as octets', () => {
    assert.equal(ipOctets('192.0.2.7').toString('hex'), 'c0000207');
    assert.equal(ipOctets('2001:db8::1').toString('hex'), '20010db8000000000000000000000001');
    assert.equal(ipOctets('::1').toString('hex'), '00000000000000000000000000000001');
    assert.equal(ipOctets('::').toString('hex'), '0'.repeat(32));
    assert.equal(ipOctets('fe80::').toString('hex'), 'fe80' + '0'.repeat(28));
    assert.equal(ipOctets('::ffff:192.0.2.1').toString('hex'), '00000000000000000000ffffc0000201');
    assert.equal(ipOctets('1:2:3:4:5:6:7:8').toString('hex'), '00010002000300040005000600070008');
  });

  it('refuses no identifiers and an unknown key type, typed', async () => {
    await assert.rejects(createKeyAndCsr([]), (e: unknown) => (e as { code?: string }).code === 'ERR_INVALID_OPTION');
    await assert.rejects(createKeyAndCsr([dns('a.test')], 'dsa' as KeyType), (e: unknown) => (e as { code?: string }).code === 'ERR_INVALID_OPTION');
  });

  it('reads no key from something that is not a CSR', () => {
    assert.throws(() => csrPublicKeyDer(Buffer.from('-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n')));
    assert.throws(() => csrPublicKeyDer(Buffer.from([0x30, 0x03, 0x02, 0x01, 0x00])));
  });
});
