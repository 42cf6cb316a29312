/**
 * CRLs (RFC 5280 §5): fetched from the distribution point a certificate
 * names, accepted only when signed by that certificate's issuer, for that
 * issuer, complete (not a delta) and current, then kept as a set of revoked
 * serials until the CRL's nextUpdate. One fetch per CRL serves every
 * certificate it covers; concurrent asks share it.
 */
import type { Clock } from '../clock.js';
import { children, expectChildren, integerHex, oidText, readTime, readTlv, type Tlv } from './der.js';
import { RevocationDataError } from './errors.js';
import { fetchRevocationData, type FetchSettings } from './fetch.js';
import { fingerprintOf, type IssuerInfo } from './certificate-info.js';
import { FreshCache } from './fresh-cache.js';
import { signatureVerifies } from './signature.js';

const OID_REASON_CODE = '2.5.29.21';
const OID_DELTA_CRL_INDICATOR = '2.5.29.27';
/** A thisUpdate this far ahead of our clock is still accepted (the CA's clock may run ahead a little). */
const ALLOWED_CLOCK_SKEW_MS = 5 * 60_000;

export interface Revocation {
  /** Epoch ms. */
  revokedAt: number;
  /** RFC 5280 reason code; 0 (unspecified) when the entry names none. */
  reason: number;
}

export interface ParsedCrl {
  thisUpdate: number;
  /** Epoch ms; undefined when the CRL names none (then it is kept for one check interval). */
  nextUpdate: number | undefined;
  revoked: Map<string, Revocation>;
}

/** Parses and checks a DER CRL; throws RevocationDataError (no data from the CRL itself in the message beyond what is wrong). */
export function parseCrl(der: Buffer, issuer: IssuerInfo, url: string, now: number): ParsedCrl {
  const reject = (reason: string): never => {
    throw new RevocationDataError('crl', url, reason);
  };
  let parts: Tlv[];
  try {
    parts = expectChildren(readTlv(der), 0x30, 'CertificateList');
  } catch {
    return reject('not a DER CRL');
  }
  const [tbs, algorithm, signature] = parts;
  if (tbs?.tag !== 0x30) return reject('not a DER CRL');
  if (!signatureVerifies(tbs.der, algorithm, signature, issuer.publicKey)) return reject("its signature does not verify with the issuer's key");
  try {
    const fields = children(tbs.content);
    let i = fields[0]?.tag === 0x02 ? 1 : 0;
    i++; // signature AlgorithmIdentifier (the outer one was checked)
    const name = fields[i++];
    if (!name?.der.equals(issuer.subjectDer)) return reject('it is issued by another CA than the certificate');
    const thisUpdate = readTime(fields[i++] as Tlv);
    const maybeNext = fields[i];
    let nextUpdate: number | undefined;
    if (maybeNext && (maybeNext.tag === 0x17 || maybeNext.tag === 0x18)) {
      nextUpdate = readTime(maybeNext);
      i++;
    }
    let revokedList: Tlv | undefined;
    if (fields[i]?.tag === 0x30) revokedList = fields[i++];
    const extensions = fields[i]?.tag === 0xa0 ? extensionList(children((fields[i] as Tlv).content)[0]) : new Map<string, Buffer>();
    if (extensions.has(OID_DELTA_CRL_INDICATOR)) return reject('it is a delta CRL, not a complete one');
    if (thisUpdate > now + ALLOWED_CLOCK_SKEW_MS) return reject('its thisUpdate is in the future');
    if (nextUpdate !== undefined && nextUpdate <= now) return reject('it is out of date (nextUpdate has passed)');
    return { thisUpdate, nextUpdate, revoked: revokedList ? entries(revokedList) : new Map() };
  } catch (error) {
    if (error instanceof RevocationDataError) throw error;
    return reject('its contents do not parse');
  }
}

function entries(list: Tlv): Map<string, Revocation> {
  const out = new Map<string, Revocation>();
  for (const entry of children(list.content)) {
    const [serial, date, extensions] = children(entry.content);
    if (serial?.tag !== 0x02 || !date) throw new Error('bad CRL entry');
    const reasonValue = extensions ? extensionList(extensions).get(OID_REASON_CODE) : undefined;
    const reason = reasonValue ? readTlv(reasonValue).content[0] ?? 0 : 0;
    out.set(integerHex(serial.content), { revokedAt: readTime(date), reason });
  }
  return out;
}

function extensionList(element: Tlv | undefined): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  if (element?.tag !== 0x30) return out;
  for (const extension of children(element.content)) {
    const parts = children(extension.content);
    const oid = parts[0];
    const value = parts[parts.length - 1];
    if (oid?.tag === 0x06 && value?.tag === 0x04) out.set(oidText(oid.content), value.content);
  }
  return out;
}

export interface CrlCacheOptions {
  fetch: Omit<FetchSettings, 'signal'>;
  /** Kept when the CRL names no nextUpdate. */
  fallbackLifetimeMs: number;
  /** Most CRLs kept; the least recently fetched is dropped first. */
  maxEntries: number;
  clock: Clock;
}

export class CrlCache {
  readonly #options: CrlCacheOptions;
  readonly #cache: FreshCache<ParsedCrl>;
  #fetches = 0;

  constructor(options: CrlCacheOptions) {
    this.#options = options;
    this.#cache = new FreshCache(options.maxEntries);
  }

  /** CRLs fetched so far (a cached answer is not a fetch). */
  get fetches(): number {
    return this.#fetches;
  }

  /** The current CRL at `url` for `issuer`: from the cache until its nextUpdate, else fetched and checked. */
  get(url: string, issuer: IssuerInfo, signal: AbortSignal): Promise<ParsedCrl> {
    const key = `${fingerprintOf(issuer.certificate.raw)} ${url}`;
    return this.#cache.get(key, this.#options.clock.now(), () => this.#fetch(url, issuer, signal));
  }

  async #fetch(url: string, issuer: IssuerInfo, signal: AbortSignal): Promise<{ value: ParsedCrl; freshUntil: number }> {
    const { clock, fallbackLifetimeMs } = this.#options;
    this.#fetches++;
    const der = await fetchRevocationData({ source: 'crl', url }, { ...this.#options.fetch, signal });
    const now = clock.now();
    const crl = parseCrl(der, issuer, url, now);
    return { value: crl, freshUntil: crl.nextUpdate ?? now + fallbackLifetimeMs };
  }
}
