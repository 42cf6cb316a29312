/**
 * TSIG (RFC 8945): HMAC signatures on DNS messages, for dynamic updates.
 *
 * dns-packet encodes the messages but has no TSIG support, so this module
 * appends the TSIG record to an already encoded message and checks the one a
 * server puts on its response. Only what an UPDATE client needs: one request,
 * one response (no multi-message TCP streams, no truncated MACs).
 *
 * The secret lives in a private field of TsigKey: it is not enumerable, not
 * in JSON, not in `util.inspect`, and no message built here contains it.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { inspect } from 'node:util';
import { InvalidOptionError } from '../errors.js';
import { DEFAULT_TSIG_ALGORITHM, DEFAULT_TSIG_FUDGE_SECONDS } from '../defaults.js';
import { TSIG_ALGORITHMS, type TsigAlgorithm } from '../kinds.js';
export { TSIG_ALGORITHMS, type TsigAlgorithm };
export { DEFAULT_TSIG_ALGORITHM, DEFAULT_TSIG_FUDGE_SECONDS };

const TYPE_TSIG = 250;
const CLASS_ANY = 255;
const HEADER_LENGTH = 12;
const ARCOUNT_OFFSET = 10;

const NODE_DIGEST: Record<TsigAlgorithm, string> = {
  'hmac-sha256': 'sha256',
  'hmac-sha512': 'sha512',
  'hmac-sha1': 'sha1',
};
const MAC_LENGTH: Record<TsigAlgorithm, number> = { 'hmac-sha256': 32, 'hmac-sha512': 64, 'hmac-sha1': 20 };

/** TSIG error codes a server puts in the TSIG record (RFC 8945 section 3). */
export const TSIG_ERRORS: Readonly<Record<number, string>> = Object.freeze({
  16: 'BADSIG',
  17: 'BADKEY',
  18: 'BADTIME',
  22: 'BADTRUNC',
});

/** A local TSIG check of a server's response failed; `reason` is a TSIG error name. */
export class TsigVerificationError extends Error {
  readonly reason: string;
  constructor(reason: string, message: string) {
    super(message);
    this.name = 'TsigVerificationError';
    this.reason = reason;
  }
}

export function isTsigAlgorithm(value: unknown): value is TsigAlgorithm {
  return typeof value === 'string' && (TSIG_ALGORITHMS as readonly string[]).includes(value.toLowerCase());
}

/** A named TSIG key. The secret cannot be read back from the object. */
export class TsigKey {
  /** Key name, lower case, without trailing dot. */
  readonly name: string;
  readonly algorithm: TsigAlgorithm;
  readonly #secret: Buffer;

  /**
   * @param secretBase64 the secret as `tsig-keygen` prints it (base64).
   * @param option option name used in InvalidOptionError messages.
   */
  constructor(name: string, algorithm: TsigAlgorithm, secretBase64: string, option = 'secret') {
    this.name = canonicalName(name, 'keyName');
    if (!isTsigAlgorithm(algorithm)) {
      throw new InvalidOptionError('algorithm', `must be one of ${TSIG_ALGORITHMS.join(', ')}`);
    }
    this.algorithm = algorithm.toLowerCase() as TsigAlgorithm;
    if (typeof secretBase64 !== 'string' || !/^[A-Za-z0-9+/]+={0,2}$/.test(secretBase64.trim())) {
      // The value itself is never echoed: it is a secret, even when malformed.
      throw new InvalidOptionError(option, 'must be a base64 TSIG secret');
    }
    this.#secret = Buffer.from(secretBase64.trim(), 'base64');
    if (this.#secret.length === 0) throw new InvalidOptionError(option, 'must not be empty');
    Object.freeze(this);
  }

  /** HMAC over the given parts with this key. */
  mac(parts: readonly Buffer[]): Buffer {
    const hmac = createHmac(NODE_DIGEST[this.algorithm], this.#secret);
    for (const part of parts) hmac.update(part);
    return hmac.digest();
  }

  toJSON(): { name: string; algorithm: TsigAlgorithm } {
    return { name: this.name, algorithm: this.algorithm };
  }

  [inspect.custom](): string {
    return `TsigKey { name: ${JSON.stringify(this.name)}, algorithm: '${this.algorithm}', secret: [redacted] }`;
  }
}

export interface SignedMessage {
  /** The message with the TSIG record appended and ARCOUNT incremented. */
  message: Buffer;
  /** The request MAC; needed to verify the response. */
  mac: Buffer;
  timeSigned: number;
}

/**
 * Signs an encoded DNS message (RFC 8945 section 4.3.3 for requests).
 * @param nowSeconds the time to sign with, seconds since the epoch.
 */
export function signMessage(message: Buffer, key: TsigKey, nowSeconds: number, fudge = DEFAULT_TSIG_FUDGE_SECONDS): SignedMessage {
  if (message.length < HEADER_LENGTH) throw new RangeError('DNS message shorter than its header');
  const timeSigned = Math.floor(nowSeconds);
  const keyName = encodeName(key.name);
  const algorithmName = encodeName(key.algorithm);
  const variables = tsigVariables(keyName, algorithmName, timeSigned, fudge, 0, Buffer.alloc(0));
  const mac = key.mac([message, variables]);

  const originalId = message.readUInt16BE(0);
  const rdata = Buffer.concat([
    algorithmName,
    uint48(timeSigned),
    uint16(fudge),
    uint16(mac.length),
    mac,
    uint16(originalId),
    uint16(0), // error
    uint16(0), // other len
  ]);
  const record = Buffer.concat([keyName, uint16(TYPE_TSIG), uint16(CLASS_ANY), uint32(0), uint16(rdata.length), rdata]);
  const signed = Buffer.concat([message, record]);
  signed.writeUInt16BE(message.readUInt16BE(ARCOUNT_OFFSET) + 1, ARCOUNT_OFFSET);
  return { message: signed, mac, timeSigned };
}

export interface TsigRecord {
  keyName: string;
  algorithm: string;
  timeSigned: number;
  fudge: number;
  mac: Buffer;
  originalId: number;
  /** 0, or a TSIG error code (16 BADSIG, 17 BADKEY, 18 BADTIME, 22 BADTRUNC). */
  error: number;
  otherData: Buffer;
  /** Offset of the TSIG record in the message: the bytes before it are what was signed. */
  offset: number;
}

export interface ResponseCheck {
  /** The TSIG error name the server reported (BADSIG, BADKEY, BADTIME, ...), if any. */
  serverError: string | undefined;
  /** True when the response carried a TSIG record whose MAC this key verified. */
  verified: boolean;
}

/**
 * Checks the TSIG record of a response to a signed request.
 *
 * A server that rejects the request's signature (BADSIG, BADKEY) answers
 * unsigned: then `serverError` names the cause and `verified` is false. For
 * any other response the MAC must verify and the time must lie within the
 * fudge, or TsigVerificationError is thrown. A response with no TSIG record
 * returns `{ verified: false }`: the caller decides what an unsigned answer is worth.
 */
export function verifyResponse(response: Buffer, key: TsigKey, requestMac: Buffer, nowSeconds: number): ResponseCheck {
  const tsig = findTsigRecord(response);
  if (!tsig) return { serverError: undefined, verified: false };
  const serverError = tsig.error === 0 ? undefined : (TSIG_ERRORS[tsig.error] ?? `TSIG error ${tsig.error}`);
  if (tsig.mac.length === 0) {
    // Unsigned TSIG record: only meaningful together with an error.
    if (serverError) return { serverError, verified: false };
    throw new TsigVerificationError('BADSIG', 'the server response carries a TSIG record without a MAC');
  }
  if (tsig.keyName !== key.name || tsig.algorithm !== key.algorithm) {
    throw new TsigVerificationError('BADKEY', `the server response is signed with a different key (${tsig.keyName}, ${tsig.algorithm})`);
  }
  if (tsig.mac.length !== MAC_LENGTH[key.algorithm]) {
    throw new TsigVerificationError('BADTRUNC', 'the server response carries a truncated MAC');
  }
  const signedPart = Buffer.from(response.subarray(0, tsig.offset));
  signedPart.writeUInt16BE(tsig.originalId, 0);
  signedPart.writeUInt16BE(signedPart.readUInt16BE(ARCOUNT_OFFSET) - 1, ARCOUNT_OFFSET);
  const variables = tsigVariables(
    encodeName(tsig.keyName),
    encodeName(tsig.algorithm),
    tsig.timeSigned,
    tsig.fudge,
    tsig.error,
    tsig.otherData,
  );
  const expected = key.mac([uint16(requestMac.length), requestMac, signedPart, variables]);
  if (!timingSafeEqual(expected, tsig.mac)) {
    throw new TsigVerificationError('BADSIG', 'the MAC of the server response does not verify');
  }
  // A BADTIME answer is signed with the server's clock, which is the very disagreement it reports.
  if (serverError === undefined && Math.abs(Math.floor(nowSeconds) - tsig.timeSigned) > tsig.fudge) {
    throw new TsigVerificationError('BADTIME', 'the server response was signed outside the allowed time window');
  }
  return { serverError, verified: true };
}

/** Finds and parses the TSIG record, which RFC 8945 requires to be the last additional record. */
export function findTsigRecord(message: Buffer): TsigRecord | undefined {
  if (message.length < HEADER_LENGTH) return undefined;
  const counts = [4, 6, 8, 10].map((o) => message.readUInt16BE(o));
  const total = counts.reduce((a, b) => a + b, 0);
  const additional = counts[3] ?? 0;
  if (additional === 0) return undefined;
  let offset = HEADER_LENGTH;
  const questions = counts[0] ?? 0;
  for (let i = 0; i < questions; i++) offset = skipName(message, offset) + 4;
  const records = total - questions;
  for (let i = 0; i < records - 1; i++) offset = skipRecord(message, offset);
  const start = offset;
  const owner = readName(message, offset);
  offset = owner.end;
  if (message.readUInt16BE(offset) !== TYPE_TSIG) return undefined;
  const rdLength = message.readUInt16BE(offset + 8);
  offset += 10;
  const rdEnd = offset + rdLength;
  if (rdEnd > message.length) throw new TsigVerificationError('FORMERR', 'the TSIG record is cut short');
  // The algorithm name inside RDATA is never compressed (RFC 8945 section 4.2).
  const algorithm = readName(message, offset, false);
  offset = algorithm.end;
  const timeSigned = message.readUIntBE(offset, 6);
  const fudge = message.readUInt16BE(offset + 6);
  const macSize = message.readUInt16BE(offset + 8);
  offset += 10;
  const mac = Buffer.from(message.subarray(offset, offset + macSize));
  offset += macSize;
  const originalId = message.readUInt16BE(offset);
  const error = message.readUInt16BE(offset + 2);
  const otherLength = message.readUInt16BE(offset + 4);
  offset += 6;
  const otherData = Buffer.from(message.subarray(offset, offset + otherLength));
  if (offset + otherLength !== rdEnd) throw new TsigVerificationError('FORMERR', 'the TSIG record is malformed');
  return { keyName: owner.name, algorithm: algorithm.name, timeSigned, fudge, mac, originalId, error, otherData, offset: start };
}

/** The TSIG variables that follow the message in the MAC input (RFC 8945 section 4.3.3). */
function tsigVariables(keyName: Buffer, algorithmName: Buffer, timeSigned: number, fudge: number, error: number, otherData: Buffer): Buffer {
  return Buffer.concat([
    keyName,
    uint16(CLASS_ANY),
    uint32(0), // TTL
    algorithmName,
    uint48(timeSigned),
    uint16(fudge),
    uint16(error),
    uint16(otherData.length),
    otherData,
  ]);
}

/** Lower-cases a domain name and strips the trailing dot, checking label syntax. */
export function canonicalName(name: string, option: string): string {
  if (typeof name !== 'string' || name.length === 0) throw new InvalidOptionError(option, 'must be a non-empty domain name');
  const trimmed = name.endsWith('.') ? name.slice(0, -1) : name;
  const labels = trimmed.split('.');
  if (trimmed.length > 253 || labels.some((l) => l.length === 0 || l.length > 63 || !/^[\x21-\x7e]+$/.test(l))) {
    throw new InvalidOptionError(option, 'must be a valid domain name');
  }
  return trimmed.toLowerCase();
}

/** Canonical (lower-case, uncompressed) wire form of a name. */
function encodeName(name: string): Buffer {
  const parts: Buffer[] = [];
  for (const label of name.toLowerCase().split('.')) {
    if (label.length === 0) continue;
    const bytes = Buffer.from(label, 'ascii');
    parts.push(Buffer.from([bytes.length]), bytes);
  }
  parts.push(Buffer.from([0]));
  return Buffer.concat(parts);
}

function readName(message: Buffer, start: number, allowPointers = true): { name: string; end: number } {
  const labels: string[] = [];
  let offset = start;
  let end = -1;
  for (let jumps = 0; jumps < 128; jumps++) {
    const length = message.readUInt8(offset);
    if (length === 0) {
      return { name: labels.join('.').toLowerCase(), end: end === -1 ? offset + 1 : end };
    }
    if ((length & 0xc0) === 0xc0) {
      if (!allowPointers) break;
      if (end === -1) end = offset + 2;
      offset = message.readUInt16BE(offset) & 0x3fff;
      continue;
    }
    if (offset + 1 + length > message.length) break;
    labels.push(message.toString('ascii', offset + 1, offset + 1 + length));
    offset += 1 + length;
  }
  throw new TsigVerificationError('FORMERR', 'malformed name in the server response');
}

function skipName(message: Buffer, offset: number): number {
  return readName(message, offset).end;
}

function skipRecord(message: Buffer, offset: number): number {
  const afterName = skipName(message, offset);
  return afterName + 10 + message.readUInt16BE(afterName + 8);
}

function uint16(value: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(value);
  return b;
}

function uint32(value: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(value);
  return b;
}

function uint48(value: number): Buffer {
  const b = Buffer.alloc(6);
  b.writeUIntBE(value, 0, 6);
  return b;
}

export interface TsigKeyFileEntry {
  name: string;
  algorithm: TsigAlgorithm;
  /** Base64, as in the file. */
  secret: string;
}

/**
 * Parses the key file `tsig-keygen` writes (also the `key` statement of named.conf):
 *   key "name" { algorithm hmac-sha256; secret "base64"; };
 * Returns every key in the text; comments (#, //, /* *\/) are ignored.
 * Errors never quote the file, which holds the secret.
 */
export function parseTsigKeyFile(text: string, option = 'keyFile'): TsigKeyFileEntry[] {
  // Comments are removed outside quoted strings only: a base64 secret may contain "//".
  const clean = text.replace(/"[^"]*"|\/\*[\s\S]*?\*\/|\/\/[^\n]*|#[^\n]*/g, (m) => (m.startsWith('"') ? m : ' '));
  const keys: TsigKeyFileEntry[] = [];
  const statement = /\bkey\s+("([^"]+)"|([^\s{]+))\s*\{([^}]*)\}\s*;/g;
  for (const match of clean.matchAll(statement)) {
    const name = match[2] ?? match[3] ?? '';
    const body = match[4] ?? '';
    const algorithm = /\balgorithm\s+"?([A-Za-z0-9.-]+)"?\s*;/.exec(body)?.[1]?.toLowerCase().replace(/\.$/, '');
    const secret = /\bsecret\s+"([^"]*)"\s*;/.exec(body)?.[1];
    if (!algorithm || !isTsigAlgorithm(algorithm)) {
      throw new InvalidOptionError(option, `key "${name}" has no supported algorithm (${TSIG_ALGORITHMS.join(', ')})`);
    }
    if (!secret) throw new InvalidOptionError(option, `key "${name}" has no secret`);
    keys.push({ name: canonicalName(name, option), algorithm, secret });
  }
  if (keys.length === 0) throw new InvalidOptionError(option, 'contains no key statement like: key "name" { algorithm hmac-sha256; secret "..."; };');
  return keys;
}
