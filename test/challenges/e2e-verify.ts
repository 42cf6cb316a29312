/** Checks shared by the obtain-* end-to-end tests: chain order, signatures up to Pebble's root, SANs. */
import assert from 'node:assert/strict';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';

const CERT_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/**
 * Asserts that `chainPem` is leaf-first, each certificate issued and signed by
 * the next, the last one issued and signed by `rootPem`, the leaf matches the
 * private key, and its SANs are exactly `names` (DNS names and IP addresses).
 */
export function assertValidChain(chainPem: string, rootPem: string, keyPem: string, names: string[]): void {
  const blocks = chainPem.match(CERT_BLOCK) ?? [];
  assert.ok(blocks.length >= 2, 'leaf and at least one intermediate');
  const certs = blocks.map((pem) => new X509Certificate(pem));
  const root = new X509Certificate(rootPem);
  const chain = [...certs, root];
  for (let i = 0; i < chain.length - 1; i++) {
    const child = chain[i] as X509Certificate;
    const parent = chain[i + 1] as X509Certificate;
    assert.ok(child.checkIssued(parent), `certificate ${i} is issued by the next (${parent.subject})`);
    assert.ok(child.verify(parent.publicKey), `certificate ${i} is signed by the next`);
  }
  const leaf = certs[0] as X509Certificate;
  assert.ok(leaf.checkPrivateKey(createPrivateKey(keyPem)), 'the leaf matches the certificate key');
  const sans = (leaf.subjectAltName ?? '').split(', ').filter(Boolean).sort();
  assert.deepEqual(sans, names.map((n) => (isIP(n) ? `IP Address:${n}` : `DNS:${n}`)).sort());
  const now = Date.now();
  assert.ok(Date.parse(leaf.validFrom) <= now + 60_000 && Date.parse(leaf.validTo) > now, 'the leaf is currently valid');
}
