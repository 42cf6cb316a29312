/**
 * OCSP (RFC 6960) for certificates that name a responder: one CertID per
 * request (SHA-1, as RFC 5019 responders expect; no nonce, so the answer is
 * one the CA can cache and we can staple), and an answer accepted only when
 * signed by the issuer or by a responder certificate the issuer delegated
 * OCSP signing to, for this very certificate, and current.
 */
import { createHash, X509Certificate } from 'node:crypto';
import type { Clock } from '../clock.js';
import { children, expectChildren, integer, integerHex, objectIdentifier, octetString, oidText, readTime, readTlv, sequence, tlv, type Tlv } from './der.js';
import { RevocationDataError } from './errors.js';
import { fetchRevocationData, type FetchSettings } from './fetch.js';
import type { IssuerInfo, RevocationTarget } from './certificate-info.js';
import { FreshCache } from './fresh-cache.js';
import { signatureVerifies } from './signature.js';

const OID_SHA1 = '1.3.14.3.2.26';
const OID_OCSP_BASIC = '1.3.6.1.5.5.7.48.1.1';
const OID_KP_OCSP_SIGNING = '1.3.6.1.5.5.7.3.9';
const HASHES: Record<string, string> = { [OID_SHA1]: 'sha1', '2.16.840.1.101.3.4.2.1': 'sha256', '2.16.840.1.101.3.4.2.2': 'sha384', '2.16.840.1.101.3.4.2.3': 'sha512' };
const ALLOWED_CLOCK_SKEW_MS = 5 * 60_000;
const RESPONSE_STATUS = ['successful', 'malformedRequest', 'internalError', 'tryLater', '(unused)', 'sigRequired', 'unauthorized'];

export interface OcspAnswer {
  status: 'good' | 'revoked' | 'unknown';
  thisUpdate: number;
  nextUpdate: number | undefined;
  revokedAt?: number | undefined;
  reason?: number | undefined;
  /** The whole OCSPResponse, as a TLS server staples it. */
  der: Buffer;
}

/** The DER OCSPRequest for one certificate. */
export function ocspRequest(target: RevocationTarget): Buffer {
  const nameHash = createHash('sha1').update(target.issuer.subjectDer).digest();
  const keyHash = createHash('sha1').update(target.issuer.publicKeyBits).digest();
  const certId = sequence(sequence(objectIdentifier(OID_SHA1), tlv(0x05)), octetString(nameHash), octetString(keyHash), integer(Buffer.from(target.serialNumber.length % 2 ? `0${target.serialNumber}` : target.serialNumber, 'hex')));
  return sequence(sequence(sequence(sequence(certId))));
}

/** Parses and checks an OCSPResponse for `target`; throws RevocationDataError. */
export function parseOcspResponse(der: Buffer, target: RevocationTarget, url: string, now: number): OcspAnswer {
  const reject = (reason: string): never => {
    throw new RevocationDataError('ocsp', url, reason);
  };
  let basic: Tlv[];
  try {
    const outer = expectChildren(readTlv(der), 0x30, 'OCSPResponse');
    const status = outer[0];
    if (status?.tag !== 0x0a) return reject('not a DER OCSP response');
    const code = status.content[0] ?? 0;
    if (code !== 0) return reject(`the responder answered ${RESPONSE_STATUS[code] ?? `status ${code}`}`);
    const bytes = expectChildren(children((outer[1] as Tlv).content)[0], 0x30, 'responseBytes');
    if (oidText((bytes[0] as Tlv).content) !== OID_OCSP_BASIC) return reject('not a basic OCSP response');
    basic = expectChildren(readTlv((bytes[1] as Tlv).content), 0x30, 'BasicOCSPResponse');
  } catch (error) {
    if (error instanceof RevocationDataError) throw error;
    return reject('not a DER OCSP response');
  }
  const [tbs, algorithm, signature, certs] = basic;
  if (tbs?.tag !== 0x30) return reject('not a DER OCSP response');
  if (!signedByIssuerOrDelegate(tbs.der, algorithm, signature, certs, target.issuer)) return reject('it is signed neither by the issuer nor by a responder the issuer authorized');
  try {
    const fields = children(tbs.content);
    const responses = fields.find((f, index) => index > 0 && f.tag === 0x30 && (fields[index - 1] as Tlv).tag === 0x18);
    const single = responses ? children(responses.content).find((r) => matches(children(r.content)[0], target)) : undefined;
    if (!single) return reject('it does not answer for this certificate');
    const [, certStatus, thisUpdateElement, ...rest] = children(single.content);
    const thisUpdate = readTime(thisUpdateElement as Tlv);
    const nextElement = rest.find((t) => t.tag === 0xa0);
    const nextUpdate = nextElement ? readTime(children(nextElement.content)[0] as Tlv) : undefined;
    if (thisUpdate > now + ALLOWED_CLOCK_SKEW_MS) return reject('its thisUpdate is in the future');
    if (nextUpdate !== undefined && nextUpdate <= now) return reject('it is out of date (nextUpdate has passed)');
    if (certStatus?.tag === 0x80) return { status: 'good', thisUpdate, nextUpdate, der };
    if (certStatus?.tag === 0xa1) {
      const [time, reasonElement] = children(certStatus.content);
      const reason = reasonElement ? readTlv(reasonElement.content).content[0] : undefined;
      return { status: 'revoked', thisUpdate, nextUpdate, revokedAt: readTime(time as Tlv), reason: reason ?? 0, der };
    }
    return { status: 'unknown', thisUpdate, nextUpdate, der };
  } catch (error) {
    if (error instanceof RevocationDataError) throw error;
    return reject('its contents do not parse');
  }
}

function matches(certId: Tlv | undefined, target: RevocationTarget): boolean {
  if (certId?.tag !== 0x30) return false;
  const [algorithm, nameHash, keyHash, serial] = children(certId.content);
  const hash = algorithm ? HASHES[oidText((children(algorithm.content)[0] as Tlv | undefined)?.content ?? Buffer.alloc(0))] : undefined;
  if (!hash || serial?.tag !== 0x02 || integerHex(serial.content) !== target.serialNumber) return false;
  return (
    createHash(hash).update(target.issuer.subjectDer).digest().equals(nameHash?.content ?? Buffer.alloc(0)) &&
    createHash(hash).update(target.issuer.publicKeyBits).digest().equals(keyHash?.content ?? Buffer.alloc(0))
  );
}

/** RFC 6960 §4.2.2.2: the issuer itself, or a certificate it issued with the OCSP-signing extended key usage. */
function signedByIssuerOrDelegate(signed: Buffer, algorithm: Tlv | undefined, signature: Tlv | undefined, certs: Tlv | undefined, issuer: IssuerInfo): boolean {
  if (signatureVerifies(signed, algorithm, signature, issuer.publicKey)) return true;
  if (certs?.tag !== 0xa0) return false;
  for (const element of children((children(certs.content)[0] as Tlv | undefined)?.content ?? Buffer.alloc(0))) {
    try {
      const responder = new X509Certificate(element.der);
      const delegated = responder.checkIssued(issuer.certificate) && responder.verify(issuer.publicKey) && (responder.keyUsage ?? []).includes(OID_KP_OCSP_SIGNING);
      if (delegated && signatureVerifies(signed, algorithm, signature, responder.publicKey)) return true;
    } catch {
      // Not a certificate: try the next one.
    }
  }
  return false;
}

export interface OcspCacheOptions {
  fetch: Omit<FetchSettings, 'signal'>;
  /** Kept this long when the answer names no nextUpdate. */
  fallbackLifetimeMs: number;
  maxEntries: number;
  clock: Clock;
}

export class OcspCache {
  readonly #options: OcspCacheOptions;
  /** Fresh until half-way to nextUpdate: asked again then, so a stapled answer never runs out. */
  readonly #cache: FreshCache<OcspAnswer>;

  constructor(options: OcspCacheOptions) {
    this.#options = options;
    this.#cache = new FreshCache(options.maxEntries);
  }

  /** The cached answer while it is fresh, else one fetched from `url` and checked. */
  get(target: RevocationTarget, url: string, signal: AbortSignal): Promise<OcspAnswer> {
    return this.#cache.get(target.fingerprint, this.#options.clock.now(), () => this.#fetch(target, url, signal));
  }

  /** When the cached answer is to be refreshed, if there is one. */
  refreshAt(target: RevocationTarget): number | undefined {
    return this.#cache.freshUntil(target.fingerprint);
  }

  async #fetch(target: RevocationTarget, url: string, signal: AbortSignal): Promise<{ value: OcspAnswer; freshUntil: number }> {
    const { clock, fallbackLifetimeMs } = this.#options;
    const der = await fetchRevocationData({ source: 'ocsp', url, body: ocspRequest(target), contentType: 'application/ocsp-request' }, { ...this.#options.fetch, signal });
    const now = clock.now();
    const answer = parseOcspResponse(der, target, url, now);
    const until = answer.nextUpdate ?? now + fallbackLifetimeMs;
    return { value: answer, freshUntil: answer.thisUpdate + Math.max(0, until - answer.thisUpdate) / 2 };
  }
}
