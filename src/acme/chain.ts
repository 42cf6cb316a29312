/** Certificate chains from the CA: validation and preferred-chain selection. */
import { X509Certificate } from 'node:crypto';
import { expectChildren, readTlv } from '../revocation/der.js';
import { CertificateInvalidError } from '../errors.js';

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n([\s\S]*?)-----END \1-----/g;

/** A downloaded chain, checked: its PEM re-encoded, leaf first, and each certificate parsed (in the same order). */
export interface ParsedChain {
  pem: string;
  certificates: readonly X509Certificate[];
}

/**
 * Checks a downloaded chain: only CERTIFICATE blocks (a CA, or a man in the
 * middle, must not slip a key or anything else into what certkeeper stores and
 * serves), at least one, each parsable. Returns the chain re-encoded, leaf first.
 */
export function validateChainPem(chainPem: string): string {
  return parseChainPem(chainPem).pem;
}

/** validateChainPem, keeping the parsed certificates: the rest of issuance reads them instead of parsing the PEM again. */
export function parseChainPem(chainPem: string): ParsedChain {
  if (typeof chainPem !== 'string') throw new CertificateInvalidError('The CA returned no PEM certificate chain');
  const labels = [...chainPem.matchAll(/-----BEGIN ([^-\r\n]*)-----/g)].map((m) => m[1]);
  const other = labels.filter((label) => label !== 'CERTIFICATE');
  if (other.length > 0) {
    throw new CertificateInvalidError(`The certificate chain holds a PEM block other than CERTIFICATE (${[...new Set(other)].join(', ')})`);
  }
  const blocks = [...chainPem.matchAll(PEM_BLOCK)];
  if (blocks.length === 0 || blocks.length !== labels.length) {
    throw new CertificateInvalidError('The certificate chain holds no complete PEM certificate');
  }
  const certificates = blocks.map((block) => {
    try {
      return new X509Certificate(block[0]);
    } catch (error) {
      throw new CertificateInvalidError('The certificate chain holds a certificate that does not parse', { cause: error });
    }
  });
  return { pem: `${certificates.map((c) => c.toString().trim()).join('\n')}\n`, certificates };
}

function commonName(distinguishedName: string): string | undefined {
  return /^CN=(.*)$/m.exec(distinguishedName)?.[1];
}

/** Issuer common names of each certificate in the chain, leaf first. */
export function chainIssuerNames(chainPem: string): string[] {
  return [...chainPem.matchAll(PEM_BLOCK)].map((block) => commonName(new X509Certificate(block[0]).issuer) ?? '');
}

/**
 * Picks the chain whose issuers include `preferredIssuer` (the match closest
 * to the root wins, as chains share their lower part); the first (default)
 * chain when none matches.
 */
export function selectPreferredChain(chains: readonly string[], preferredIssuer: string | undefined): string {
  const first = chains[0];
  if (first === undefined) throw new CertificateInvalidError('The CA returned no certificate chain');
  if (!preferredIssuer) return first;
  let best: { chain: string; distance: number } | undefined;
  for (const chain of chains) {
    const issuers = chainIssuerNames(chain);
    const index = issuers.lastIndexOf(preferredIssuer);
    if (index === -1) continue;
    const distance = issuers.length - index;
    if (!best || distance < best.distance) best = { chain, distance };
  }
  return best?.chain ?? first;
}

/** `rel="alternate"` URLs from a Link header (RFC 8555 7.4.2). */
export function alternateLinks(header: unknown): string[] {
  const values = Array.isArray(header) ? header : typeof header === 'string' ? [header] : [];
  const out: string[] = [];
  for (const value of values) {
    for (const part of String(value).split(/,(?=\s*<)/)) {
      const match = /^\s*<([^>]+)>\s*;(.*)$/.exec(part);
      if (match?.[1] && /(^|;)\s*rel\s*=\s*"?alternate"?\s*(;|$)/i.test(match[2] ?? '')) out.push(match[1]);
    }
  }
  return out;
}

/**
 * The leaf must certify the key of the CSR that was finalized: a CA bug (or a
 * mixed-up order) would otherwise store a certificate the new key cannot use.
 */
export function assertLeafMatchesCsr(leaf: X509Certificate, csr: Buffer): void {
  const leafSpki = leaf.publicKey.export({ type: 'spki', format: 'der' });
  let csrSpki: Buffer;
  try {
    csrSpki = csrPublicKeyDer(csr);
  } catch (error) {
    throw new CertificateInvalidError('The CSR does not parse', { cause: error });
  }
  if (!leafSpki.equals(csrSpki)) {
    throw new CertificateInvalidError("The issued certificate's public key does not match the CSR");
  }
}

/** The subjectPublicKeyInfo DER of a PEM or DER PKCS#10 request (RFC 2986 4). */
export function csrPublicKeyDer(csr: Buffer): Buffer {
  const text = csr.toString('latin1');
  let der = csr;
  if (text.includes('-----BEGIN')) {
    const body = /-----BEGIN (?:NEW )?CERTIFICATE REQUEST-----([\s\S]*?)-----END/.exec(text)?.[1];
    if (body === undefined) throw new Error('not a PEM CERTIFICATE REQUEST');
    der = Buffer.from(body.replace(/\s+/g, ''), 'base64');
  }
  const [info] = expectChildren(readTlv(der), 0x30, 'CertificationRequest');
  const [, , spki] = expectChildren(info, 0x30, 'CertificationRequestInfo');
  if (spki?.tag !== 0x30) throw new Error('CertificationRequestInfo: no subjectPublicKeyInfo');
  return Buffer.from(spki.der);
}
