/**
 * Just enough DER (X.690) for revocation data: OCSP requests and responses,
 * CRLs and the two certificate extensions that name them. @peculiar/x509 has
 * no OCSP, and a CRL of many thousand entries is walked faster by hand than
 * through a schema library. The test CA writes its answers with this too.
 */

export interface Tlv {
  tag: number;
  /** The whole element, header included. */
  der: Buffer;
  content: Buffer;
}

/** Reads the element at `offset`; throws on truncation or a length form DER forbids. */
export function readTlv(buffer: Buffer, offset = 0): Tlv {
  const tag = byteAt(buffer, offset);
  if ((tag & 0x1f) === 0x1f) throw new Error('multi-byte tags are not supported');
  let length = byteAt(buffer, offset + 1);
  let header = 2;
  if (length & 0x80) {
    const count = length & 0x7f;
    if (count === 0 || count > 4) throw new Error('unsupported DER length');
    length = 0;
    for (let i = 0; i < count; i++) length = length * 256 + byteAt(buffer, offset + 2 + i);
    header += count;
  }
  const end = offset + header + length;
  if (end > buffer.length) throw new Error('truncated DER');
  return { tag, der: buffer.subarray(offset, end), content: buffer.subarray(offset + header, end) };
}

/** The elements inside a constructed element's content. */
export function children(content: Buffer): Tlv[] {
  const out: Tlv[] = [];
  for (let offset = 0; offset < content.length; ) {
    const child = readTlv(content, offset);
    out.push(child);
    offset += child.der.length;
  }
  return out;
}

export function tlv(tag: number, ...content: Buffer[]): Buffer {
  const body = Buffer.concat(content);
  const n = body.length;
  const length = n < 0x80 ? Buffer.from([n]) : lengthBytes(n);
  return Buffer.concat([Buffer.from([tag]), length, body]);
}

export const sequence = (...content: Buffer[]): Buffer => tlv(0x30, ...content);
export const octetString = (content: Buffer): Buffer => tlv(0x04, content);
export const enumerated = (value: number): Buffer => tlv(0x0a, Buffer.from([value]));
/** Context-specific constructed [n], as EXPLICIT tagging writes it. */
export const explicit = (n: number, ...content: Buffer[]): Buffer => tlv(0xa0 | n, ...content);
export const bitString = (content: Buffer): Buffer => tlv(0x03, Buffer.from([0]), content);

export function generalizedTime(at: number): Buffer {
  const iso = new Date(Math.floor(at / 1000) * 1000).toISOString(); // 2026-12-03T12:00:00.000Z
  return tlv(0x18, Buffer.from(`${iso.slice(0, 19).replace(/[-:T]/g, '')}Z`, 'ascii'));
}

export function objectIdentifier(dotted: string): Buffer {
  const [first = 0, second = 0, ...rest] = dotted.split('.').map(Number);
  const bytes = [first * 40 + second];
  for (const arc of rest) {
    const groups = [arc & 0x7f];
    for (let value = Math.floor(arc / 128); value > 0; value = Math.floor(value / 128)) groups.unshift((value & 0x7f) | 0x80);
    bytes.push(...groups);
  }
  return tlv(0x06, Buffer.from(bytes));
}

/** A positive INTEGER from big-endian bytes (minimal, sign byte added when needed). */
export function integer(bytes: Buffer): Buffer {
  let start = 0;
  while (start < bytes.length - 1 && bytes[start] === 0) start++;
  const trimmed = bytes.subarray(start);
  return tlv(0x02, (byteAt(trimmed, 0) & 0x80) !== 0 ? Buffer.concat([Buffer.from([0]), trimmed]) : trimmed);
}

/** An ECDSA signature from WebCrypto's r||s form to X.509's DER SEQUENCE { r, s }. */
export function ecdsaSignatureToDer(raw: Buffer): Buffer {
  const half = raw.length / 2;
  return sequence(integer(raw.subarray(0, half)), integer(raw.subarray(half)));
}

function lengthBytes(n: number): Buffer {
  const bytes: number[] = [];
  for (let value = n; value > 0; value = Math.floor(value / 256)) bytes.unshift(value & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

function byteAt(buffer: Buffer, index: number): number {
  const value = buffer[index];
  if (value === undefined) throw new Error('truncated DER');
  return value;
}

/** Dotted text of an OBJECT IDENTIFIER's content bytes. */
export function oidText(content: Buffer): string {
  if (content.length === 0) return '';
  const first = content[0] as number;
  const arcs = [first < 80 ? Math.floor(first / 40) : 2, first < 80 ? first % 40 : first - 80];
  let value = 0;
  for (const byte of content.subarray(1)) {
    value = value * 128 + (byte & 0x7f);
    if ((byte & 0x80) === 0) {
      arcs.push(value);
      value = 0;
    }
  }
  return arcs.join('.');
}

/** Epoch ms of a UTCTime (0x17) or GeneralizedTime (0x18) in the Z form DER requires. */
export function readTime(element: Tlv): number {
  const text = element.content.toString('ascii');
  let match: RegExpExecArray | null;
  let year: number;
  if (element.tag === 0x17 && (match = /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(text))) {
    const yy = Number(match[1]);
    year = yy >= 50 ? 1900 + yy : 2000 + yy; // RFC 5280 §4.1.2.5.1
  } else if (element.tag === 0x18 && (match = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(?:\.\d+)?Z$/.exec(text))) {
    year = Number(match[1]);
  } else {
    throw new Error('not a DER time');
  }
  const [, , mo, d, h, mi, s] = match.map(Number) as number[];
  return Date.UTC(year, (mo as number) - 1, d, h, mi, s);
}

/** Lower-case hex of a positive INTEGER's value without leading zeros: one spelling of a serial, whoever wrote it. */
export function integerHex(content: Buffer): string {
  return content.toString('hex').replace(/^0+(?=.)/, '');
}

/** The children of a constructed element, checking its tag. */
export function expectChildren(element: Tlv | undefined, tag: number, what: string): Tlv[] {
  if (element?.tag !== tag) throw new Error(`${what}: unexpected DER structure`);
  return children(element.content);
}
