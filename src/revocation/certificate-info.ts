/**
 * What revocation checking needs to know of a served certificate: its serial,
 * the CRLs and OCSP responders it names, and the issuer that must have
 * signed whatever they answer. Read once per certificate from its chain.
 */
import { createHash, X509Certificate, type KeyObject } from 'node:crypto';
import { children, expectChildren, integerHex, oidText, readTlv, type Tlv } from './der.js';

const OID_CRL_DISTRIBUTION_POINTS = '2.5.29.31';
const OID_AUTHORITY_INFO_ACCESS = '1.3.6.1.5.5.7.1.1';
const OID_AD_OCSP = '1.3.6.1.5.5.7.48.1';
/** Only URLs a plain HTTP client can fetch (no ldap:, no file:). */
const FETCHABLE = /^https?:\/\//i;

export interface RevocationTarget {
  /** Lower-case hex, no leading zeros. */
  serialNumber: string;
  /** sha256 of the leaf's DER: the key of its stapled OCSP response. */
  fingerprint: string;
  leafDer: Buffer;
  crlUrls: string[];
  ocspUrls: string[];
  issuer: IssuerInfo;
}

export interface IssuerInfo {
  /** DER of the issuer's subject Name (a CRL must name the same issuer). */
  subjectDer: Buffer;
  /** The subjectPublicKey BIT STRING's value (what OCSP's issuerKeyHash hashes). */
  publicKeyBits: Buffer;
  publicKey: KeyObject;
  certificate: X509Certificate;
}

/**
 * The leaf's revocation facts; undefined when the chain names no issuer of the leaf (then nothing can be checked).
 * `certificates`: the chain parsed already (leaf first), read instead of the PEM.
 */
export function revocationTarget(chainPem: string, certificates?: readonly X509Certificate[]): RevocationTarget | undefined {
  const chain = certificates ?? (chainPem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).slice(0, 2).map((block) => new X509Certificate(block));
  if (chain.length < 2) return undefined;
  const leaf = chain[0] as X509Certificate;
  const issuer = chain[1] as X509Certificate;
  // Names and key identifiers match; the chain is the CA's own answer, and what the CRL or OCSP responder says is checked against this key.
  if (!leaf.checkIssued(issuer)) return undefined;
  const leafTbs = tbsParts(leaf.raw);
  const issuerTbs = tbsParts(issuer.raw);
  const extensions = extensionsOf(leafTbs);
  return {
    serialNumber: integerHex(leafTbs.serial.content),
    fingerprint: fingerprintOf(leaf.raw),
    leafDer: leaf.raw,
    crlUrls: crlDistributionUrls(extensions.get(OID_CRL_DISTRIBUTION_POINTS)),
    ocspUrls: ocspUrls(extensions.get(OID_AUTHORITY_INFO_ACCESS)),
    issuer: {
      subjectDer: issuerTbs.subject.der,
      publicKeyBits: expectChildren(issuerTbs.spki, 0x30, 'subjectPublicKeyInfo')[1]?.content.subarray(1) ?? Buffer.alloc(0),
      publicKey: issuer.publicKey,
      certificate: issuer,
    },
  };
}

export function fingerprintOf(der: Buffer): string {
  return createHash('sha256').update(der).digest('base64url');
}

interface TbsParts {
  serial: Tlv;
  subject: Tlv;
  spki: Tlv;
  rest: Tlv[];
}

function tbsParts(certificateDer: Buffer): TbsParts {
  const tbs = expectChildren(expectChildren(readTlv(certificateDer), 0x30, 'certificate')[0], 0x30, 'tbsCertificate');
  const fields = tbs[0]?.tag === 0xa0 ? tbs.slice(1) : tbs;
  const [serial, , , , subject, spki, ...rest] = fields;
  if (serial?.tag !== 0x02 || subject?.tag !== 0x30 || spki?.tag !== 0x30) throw new Error('tbsCertificate: unexpected DER structure');
  return { serial, subject, spki, rest };
}

/** extnValue (the OCTET STRING's content) by OID. */
function extensionsOf(tbs: TbsParts): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  const wrapper = tbs.rest.find((t) => t.tag === 0xa3);
  if (!wrapper) return out;
  for (const extension of expectChildren(children(wrapper.content)[0], 0x30, 'extensions')) {
    const parts = children(extension.content);
    const oid = parts[0];
    const value = parts[parts.length - 1];
    if (oid?.tag === 0x06 && value?.tag === 0x04) out.set(oidText(oid.content), value.content);
  }
  return out;
}

/** DistributionPoint.distributionPoint [0] fullName [0] GeneralNames: the uniformResourceIdentifier [6] entries. */
function crlDistributionUrls(value: Buffer | undefined): string[] {
  if (!value) return [];
  const urls: string[] = [];
  for (const point of expectChildren(readTlv(value), 0x30, 'CRLDistributionPoints')) {
    const name = children(point.content).find((t) => t.tag === 0xa0);
    const fullName = name ? children(name.content).find((t) => t.tag === 0xa0) : undefined;
    for (const general of fullName ? children(fullName.content) : []) {
      if (general.tag === 0x86) urls.push(general.content.toString('ascii'));
    }
  }
  return urls.filter((url) => FETCHABLE.test(url));
}

function ocspUrls(value: Buffer | undefined): string[] {
  if (!value) return [];
  const urls: string[] = [];
  for (const description of expectChildren(readTlv(value), 0x30, 'AuthorityInfoAccess')) {
    const [method, location] = children(description.content);
    if (method?.tag === 0x06 && oidText(method.content) === OID_AD_OCSP && location?.tag === 0x86) urls.push(location.content.toString('ascii'));
  }
  return urls.filter((url) => FETCHABLE.test(url));
}
