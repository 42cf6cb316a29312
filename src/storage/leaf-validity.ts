/**
 * The validity of a stored leaf, read without a full X.509 parse: scheduling
 * 100,000 stored names must not cost 100,000 certificate parses.
 */
import { CertificateInvalidError } from '../errors.js';

/**
 * notBefore and notAfter of the first certificate of a PEM chain, read
 * straight from its DER: Certificate > tbsCertificate > ([0] version),
 * serialNumber, signature, issuer, validity. About a hundred times cheaper
 * than new X509Certificate(), which matters for 100,000 stored names.
 */
export function leafValidity(certPem: string, where = 'certificate'): { notBefore: Date; notAfter: Date } {
  const bad = (): never => {
    throw new CertificateInvalidError(`Certificate in ${where} cannot be parsed (validity)`);
  };
  const match = /-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+?)-----END CERTIFICATE-----/.exec(certPem);
  if (!match) return bad();
  const der = Buffer.from((match[1] as string).replace(/\s+/g, ''), 'base64');
  /** Reads the TLV at `at`: [tag, start of value, end of value]. */
  const tlv = (at: number): [number, number, number] => {
    if (at + 2 > der.length) return bad();
    const tag = der[at] as number;
    let len = der[at + 1] as number;
    let start = at + 2;
    if (len & 0x80) {
      const bytes = len & 0x7f;
      if (bytes === 0 || bytes > 4 || start + bytes > der.length) return bad();
      len = 0;
      for (let i = 0; i < bytes; i++) len = len * 256 + (der[start + i] as number);
      start += bytes;
    }
    if (start + len > der.length) return bad();
    return [tag, start, start + len];
  };
  const [certTag, certStart] = tlv(0);
  const [tbsTag, tbsStart] = tlv(certStart);
  if (certTag !== 0x30 || tbsTag !== 0x30) return bad();
  let at = tbsStart;
  let [tag, , end] = tlv(at);
  if (tag === 0xa0) [tag, , end] = tlv((at = end));
  // serialNumber (INTEGER), then signature and issuer (SEQUENCEs), then validity.
  if (tag !== 0x02) return bad();
  for (let i = 0; i < 2; i++) {
    [tag, , end] = tlv((at = end));
    if (tag !== 0x30) return bad();
  }
  const [validityTag, validityStart] = tlv((at = end));
  if (validityTag !== 0x30) return bad();
  const time = (offset: number): [Date, number] => {
    const [t, start, stop] = tlv(offset);
    const text = der.toString('latin1', start, stop);
    const m = t === 0x17 ? /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(text) : t === 0x18 ? /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(text) : null;
    if (!m) return bad();
    let year = Number(m[1]);
    // RFC 5280 4.1.2.5.1: two-digit years 50-99 are 19xx.
    if (t === 0x17) year += year >= 50 ? 1900 : 2000;
    const ms = Date.UTC(year, Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]));
    return [new Date(ms), stop];
  };
  const [notBefore, next] = time(validityStart);
  const [notAfter] = time(next);
  return { notBefore, notAfter };
}

