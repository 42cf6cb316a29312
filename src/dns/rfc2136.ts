/**
 * DNS-01 through RFC 2136 dynamic updates signed with TSIG (RFC 8945): works
 * with BIND, PowerDNS, Knot, Windows DNS and anything else that accepts
 * UPDATE messages, with no daemon or API in between.
 *
 * An add is a prerequisite-free "add to an RRset" (it never removes other TXT
 * values at the name: the wildcard and the apex of one name need two values at
 * once); a removal is "delete an RR from an RRset" (class NONE), so only the
 * value this provider added goes away.
 *
 * dns-packet encodes the message; it has no class NONE, so that one field is
 * patched in the encoded bytes. The request and response travel here rather
 * than through query.ts because TSIG needs the raw bytes of both.
 */
import { randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { inspect } from 'node:util';
import type * as Packet from 'dns-packet';
import { lazyModule } from '../lazy.js';

// Loaded on the first query: serving certificates needs no DNS.
const packet = lazyModule<typeof Packet>('dns-packet');
import type { Clock } from '../clock.js';
import { systemClock } from '../clock.js';
import { AbortedError, DnsProviderError, DnsQueryError, InvalidOptionError } from '../errors.js';
import type { Logger } from '../logger.js';
import { createDefaultLogger, validateLogger } from '../logger.js';
import { findZone, formatServer, parseDnsServer, type DnsServer } from './query.js';
import {
  canonicalName,
  DEFAULT_TSIG_ALGORITHM,
  isTsigAlgorithm,
  parseTsigKeyFile,
  signMessage,
  TSIG_ALGORITHMS,
  TsigKey,
  TsigVerificationError,
  verifyResponse,
  type TsigAlgorithm,
} from './tsig.js';
import type { DnsProvider, DnsRecord } from './types.js';
import { durationMs, port as validPort } from '../validate.js';
import { DEFAULT_RFC2136_PORT, DEFAULT_RFC2136_TIMEOUT_MS } from '../defaults.js';

// Loaded on first use (lazy.ts): only an RFC 2136 provider sends updates.
const dgram = lazyModule<typeof import('node:dgram')>('node:dgram');
export { DEFAULT_RFC2136_TIMEOUT_MS, DEFAULT_RFC2136_PORT };

/** Messages larger than this go over TCP: a plain (non-EDNS) UDP DNS message is limited to 512 bytes. */
export const MAX_UDP_UPDATE_SIZE = 512;

const PROVIDER = 'rfc2136';
const OPCODE_UPDATE = 5;
const CLASS_NONE = 254;
const MAX_TXT_STRING = 255;
/** Header response codes (RFC 1035, RFC 2136 section 2.2). */
const RCODES: readonly string[] = ['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED', 'YXDOMAIN', 'YXRRSET', 'NXRRSET', 'NOTAUTH', 'NOTZONE'];

export interface Rfc2136Options {
  /** Primary server that accepts updates: `"host:port"` (port 53 when omitted) or `{ host, port }`. */
  server: string | { host: string; port?: number };
  /** Zone to update; found by an SOA query to `server` when omitted. */
  zone?: string;
  /** TSIG key name; optional with `keyFile` when the file holds exactly one key. */
  keyName?: string;
  /** Base64 TSIG secret. Give this or `keyFile`. Never logged. */
  secret?: string;
  /** Path of a key file as `tsig-keygen` writes it: `key "name" { algorithm ...; secret "..."; };`. */
  keyFile?: string;
  /** Default `hmac-sha256`; with `keyFile` the file's algorithm is used. */
  algorithm?: TsigAlgorithm;
  /** Per-update time limit, UDP and any TCP retry together (default 10 s). */
  timeoutMs?: number;
  logger?: Logger;
  clock?: Clock;
}

interface ResolvedRfc2136Options {
  server: DnsServer;
  zone: string | undefined;
  timeoutMs: number;
}

export type Rfc2136Transport = 'udp' | 'tcp';

export class Rfc2136Provider implements DnsProvider {
  readonly name = PROVIDER;
  readonly #options: Readonly<ResolvedRfc2136Options>;
  readonly #key: TsigKey;
  readonly #log: Logger;
  readonly #clock: Clock;

  constructor(options: Rfc2136Options) {
    if (typeof options !== 'object' || options === null) throw new InvalidOptionError('rfc2136', 'options object is required');
    this.#options = Object.freeze({
      server: resolveServer(options.server),
      zone: options.zone === undefined ? undefined : canonicalName(options.zone, 'zone'),
      timeoutMs: resolveTimeout(options.timeoutMs),
    });
    this.#key = resolveKey(options);
    this.#clock = options.clock ?? systemClock;
    const base = options.logger === undefined ? createDefaultLogger('silent') : validateLogger(options.logger);
    this.#log = base.child({ component: 'dns-rfc2136' });
  }

  /** Adds `record.value` to the TXT RRset at `record.name`, leaving other values in place. */
  async addTxtRecord(record: DnsRecord, signal?: AbortSignal): Promise<void> {
    await this.#update('add', record, signal);
  }

  /** Removes exactly `record.value` from the TXT RRset at `record.name`; absent values are no error. */
  async removeTxtRecord(record: DnsRecord, signal?: AbortSignal): Promise<void> {
    await this.#update('remove', record, signal);
  }

  async #update(action: 'add' | 'remove', record: DnsRecord, signal: AbortSignal | undefined): Promise<void> {
    if (signal?.aborted) throw new AbortedError('DNS update aborted', { cause: signal.reason });
    const name = canonicalName(record.name, 'record.name');
    const zone = await this.#zoneFor(name, record.zone, signal);
    if (name !== zone && !name.endsWith(`.${zone}`)) {
      throw new DnsProviderError(PROVIDER, `${name} is not inside zone ${zone}`, 'NOTZONE');
    }
    const ttl = action === 'remove' ? 0 : record.ttl;
    if (!Number.isInteger(ttl) || ttl < 0 || ttl > 0x7fffffff) throw new InvalidOptionError('record.ttl', 'must be a non-negative integer');

    const id = randomInt(0, 0x10000);
    const unsigned = encodeUpdate(id, zone, name, record.value, ttl, action);
    const signed = signMessage(unsigned, this.#key, this.#clock.now() / 1000);
    const server = this.#options.server;
    const where = formatServer(server);
    const { response, transport } = await sendUpdate(server, signed.message, id, this.#options.timeoutMs, signal);

    const rcodeNumber = response.readUInt16BE(2) & 0xf;
    const rcode = RCODES[rcodeNumber] ?? `RCODE ${rcodeNumber}`;
    let tsigError: string | undefined;
    let verified = false;
    try {
      const check = verifyResponse(response, this.#key, signed.mac, this.#clock.now() / 1000);
      tsigError = check.serverError;
      verified = check.verified;
    } catch (error) {
      if (!(error instanceof TsigVerificationError)) {
        throw new DnsProviderError(PROVIDER, `the response of ${where} is malformed`, 'MALFORMED', { cause: error });
      }
      throw new DnsProviderError(
        PROVIDER,
        `the response of ${where} failed the TSIG check (${error.message}); the update may or may not have been applied`,
        error.reason,
      );
    }
    const context = { zone, server: where, keyName: this.#key.name };
    if (tsigError !== undefined) throw updateError(tsigError, { ...context, algorithm: this.#key.algorithm });
    if (rcode !== 'NOERROR') throw updateError(rcode, { ...context, algorithm: this.#key.algorithm, name });
    if (!verified) {
      throw new DnsProviderError(PROVIDER, `${where} answered the signed update without a TSIG signature; not trusting it`, 'UNSIGNED_RESPONSE');
    }
    this.#log.debug({ record: { name, zone }, server: where, transport }, action === 'add' ? 'TXT value added' : 'TXT value removed');
  }

  async #zoneFor(name: string, recordZone: string | undefined, signal: AbortSignal | undefined): Promise<string> {
    if (this.#options.zone !== undefined) return this.#options.zone;
    // A zone found on public DNS by the solver may differ from the internal view: ask the primary itself.
    try {
      return await findZone(name, [this.#options.server], { timeoutMs: this.#options.timeoutMs, signal, recursionDesired: false });
    } catch (error) {
      if (error instanceof AbortedError) throw error;
      if (recordZone !== undefined) return canonicalName(recordZone, 'record.zone');
      const detail = error instanceof DnsQueryError ? error.message : String(error);
      throw new DnsProviderError(
        PROVIDER,
        `could not find the zone of ${name} on ${formatServer(this.#options.server)} (${detail}); set the zone option`,
        'ZONE_NOT_FOUND',
        { cause: error },
      );
    }
  }

  toJSON(): Record<string, unknown> {
    return {
      name: this.name,
      server: formatServer(this.#options.server),
      zone: this.#options.zone,
      keyName: this.#key.name,
      algorithm: this.#key.algorithm,
    };
  }

  [inspect.custom](): string {
    return `Rfc2136Provider ${inspect(this.toJSON())}`;
  }
}

function resolveServer(server: Rfc2136Options['server']): DnsServer {
  if (typeof server === 'string') return parseDnsServer(server, 'server', DEFAULT_RFC2136_PORT);
  if (typeof server === 'object' && server !== null && typeof server.host === 'string' && server.host.length > 0) {
    const port = validPort(server.port, 'server.port', 1) ?? DEFAULT_RFC2136_PORT;
    return { host: server.host, port };
  }
  throw new InvalidOptionError('server', 'must be "host:port" or { host, port }');
}

function resolveTimeout(timeoutMs: number | undefined): number {
  return durationMs(timeoutMs, 'timeoutMs') ?? DEFAULT_RFC2136_TIMEOUT_MS;
}

function resolveKey(options: Rfc2136Options): TsigKey {
  if (options.algorithm !== undefined && !isTsigAlgorithm(options.algorithm)) {
    throw new InvalidOptionError('algorithm', `must be one of ${TSIG_ALGORITHMS.join(', ')}`);
  }
  if (options.secret !== undefined && options.keyFile !== undefined) {
    throw new InvalidOptionError('secret', 'give either secret or keyFile, not both');
  }
  if (options.keyFile !== undefined) {
    if (typeof options.keyFile !== 'string' || options.keyFile.length === 0) throw new InvalidOptionError('keyFile', 'must be a file path');
    let text: string;
    try {
      text = readFileSync(options.keyFile, 'utf8');
    } catch (error) {
      throw new InvalidOptionError('keyFile', `cannot read ${options.keyFile}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`);
    }
    const keys = parseTsigKeyFile(text, 'keyFile');
    const wanted = options.keyName === undefined ? undefined : canonicalName(options.keyName, 'keyName');
    const entry = wanted === undefined ? (keys.length === 1 ? keys[0] : undefined) : keys.find((k) => k.name === wanted);
    if (!entry) {
      throw new InvalidOptionError(
        'keyName',
        wanted === undefined ? `${options.keyFile} holds several keys; name one with keyName` : `no key "${wanted}" in ${options.keyFile}`,
      );
    }
    if (options.algorithm !== undefined && options.algorithm.toLowerCase() !== entry.algorithm) {
      throw new InvalidOptionError('algorithm', `${options.algorithm} differs from the key file's ${entry.algorithm}`);
    }
    return new TsigKey(entry.name, entry.algorithm, entry.secret, 'keyFile');
  }
  if (options.keyName === undefined) throw new InvalidOptionError('keyName', 'is required (the TSIG key name)');
  if (options.secret === undefined) throw new InvalidOptionError('secret', 'is required unless keyFile is given');
  return new TsigKey(options.keyName, options.algorithm ?? DEFAULT_TSIG_ALGORITHM, options.secret);
}

/** Encodes the UPDATE message: zone section = the zone's SOA question, update section = one TXT RR. */
export function encodeUpdate(id: number, zone: string, name: string, value: string, ttl: number, action: 'add' | 'remove'): Buffer {
  const data = splitTxt(value);
  const question: Packet.Question = { type: 'SOA', name: zone, class: 'IN' };
  const update: Packet.TxtAnswer = { type: 'TXT', name, class: 'IN', ttl, data };
  const message = packet.encode({ type: 'query', id, flags: OPCODE_UPDATE << 11, questions: [question], authorities: [update] });
  if (action === 'remove') {
    // RFC 2136 section 2.5.4: class NONE deletes this one RR; dns-packet cannot spell NONE.
    const classOffset = packet.encodingLength({ questions: [question] }) + wireNameLength(name) + 2;
    message.writeUInt16BE(CLASS_NONE, classOffset);
  }
  return message;
}

/** TXT character-strings hold at most 255 bytes each; longer values are split (and joined by resolvers). */
function splitTxt(value: string): Buffer[] {
  if (typeof value !== 'string' || value.length === 0) throw new InvalidOptionError('record.value', 'must be a non-empty string');
  const bytes = Buffer.from(value, 'utf8');
  const parts: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += MAX_TXT_STRING) parts.push(bytes.subarray(i, i + MAX_TXT_STRING));
  return parts;
}

function wireNameLength(name: string): number {
  return name.split('.').reduce((sum, label) => sum + Buffer.byteLength(label) + 1, 0) + 1;
}

interface ErrorContext {
  zone: string;
  server: string;
  keyName: string;
  algorithm: string;
  name?: string;
}

/** Turns a response code or TSIG error into a DnsProviderError that names the cause. */
function updateError(code: string, c: ErrorContext): DnsProviderError {
  const messages: Record<string, string> = {
    BADSIG: `${c.server} rejected the TSIG signature of key "${c.keyName}" (${c.algorithm}): the secret or algorithm does not match the server's`,
    BADKEY: `${c.server} does not know TSIG key "${c.keyName}" with algorithm ${c.algorithm}`,
    BADTIME: `${c.server} rejected the TSIG time: this host's clock and the server's differ by more than the allowed fudge`,
    BADTRUNC: `${c.server} rejected a truncated TSIG MAC`,
    NOTAUTH: `${c.server} is not authoritative for zone ${c.zone}, or does not accept key "${c.keyName}" for it`,
    REFUSED: `${c.server} refused the update of ${c.name ?? 'the record'} in zone ${c.zone}: its update policy does not allow key "${c.keyName}" to change TXT records there`,
    NOTZONE: `${c.name ?? 'the record'} is not inside zone ${c.zone} according to ${c.server}`,
    SERVFAIL: `${c.server} failed while applying the update to zone ${c.zone} (SERVFAIL); see the server's log`,
    FORMERR: `${c.server} could not parse the update (FORMERR)`,
    NOTIMP: `${c.server} does not implement dynamic updates (NOTIMP)`,
  };
  return new DnsProviderError(PROVIDER, messages[code] ?? `${c.server} answered the update with ${code}`, code);
}

interface Exchanged {
  response: Buffer;
  transport: Rfc2136Transport;
}

/** Sends the signed update over UDP (TCP when large or truncated) and returns the raw response. */
async function sendUpdate(server: DnsServer, message: Buffer, id: number, timeoutMs: number, signal: AbortSignal | undefined): Promise<Exchanged> {
  const deadline = Date.now() + timeoutMs;
  if (message.length <= MAX_UDP_UPDATE_SIZE) {
    const response = await exchange(server, message, id, 'udp', deadline, signal);
    const truncated = (response.readUInt16BE(2) & packet.TRUNCATED_RESPONSE) !== 0;
    if (!truncated) return { response, transport: 'udp' };
  }
  return { response: await exchange(server, message, id, 'tcp', deadline, signal), transport: 'tcp' };
}

function exchange(
  server: DnsServer,
  message: Buffer,
  id: number,
  transport: Rfc2136Transport,
  deadline: number,
  signal: AbortSignal | undefined,
): Promise<Buffer> {
  const where = formatServer(server);
  return new Promise((resolve, reject) => {
    let done = false;
    let release: () => void = () => {};
    const settle = (error: Error | undefined, response?: Buffer): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      release();
      if (error) reject(error);
      else resolve(response as Buffer);
    };
    const fail = (reason: string, text: string, cause?: unknown): void =>
      settle(new DnsProviderError(PROVIDER, `update to ${where} over ${transport.toUpperCase()}: ${text}`, reason, cause === undefined ? undefined : { cause }));
    const isOurs = (response: Buffer): boolean =>
      response.length >= 12 &&
      response.readUInt16BE(0) === id &&
      (response.readUInt16BE(2) & 0x8000) !== 0 &&
      ((response.readUInt16BE(2) >> 11) & 0xf) === OPCODE_UPDATE;
    const onAbort = (): void => settle(new AbortedError('DNS update aborted', { cause: signal?.reason }));
    const timer = setTimeout(() => fail('TIMEOUT', 'no answer in time'), Math.max(0, deadline - Date.now()));
    timer.unref();
    signal?.addEventListener('abort', onAbort, { once: true });

    if (transport === 'udp') {
      const socket = dgram.createSocket(net.isIPv6(server.host) ? 'udp6' : 'udp4');
      release = () => {
        try {
          socket.close();
        } catch {
          // already closed
        }
      };
      socket.on('error', (error) => fail('NETWORK', error.message, error));
      // Datagrams with another ID or from another address are not the answer: keep waiting.
      socket.on('message', (data) => {
        if (isOurs(data)) settle(undefined, data);
      });
      socket.connect(server.port, server.host, () => {
        socket.send(message, (error) => {
          if (error) fail('NETWORK', error.message, error);
        });
      });
    } else {
      const socket = net.connect({ host: server.host, port: server.port });
      release = () => socket.destroy();
      const length = Buffer.alloc(2);
      length.writeUInt16BE(message.length);
      let buffered = Buffer.alloc(0);
      socket.on('connect', () => socket.write(Buffer.concat([length, message])));
      socket.on('error', (error) => fail('NETWORK', error.message, error));
      socket.on('data', (chunk: Buffer) => {
        buffered = Buffer.concat([buffered, chunk]);
        if (buffered.length < 2 || buffered.length < 2 + buffered.readUInt16BE(0)) return;
        const response = buffered.subarray(2, 2 + buffered.readUInt16BE(0));
        if (isOurs(response)) settle(undefined, Buffer.from(response));
        else fail('MALFORMED', 'the reply does not match the request');
      });
      socket.on('end', () => fail('NETWORK', 'connection closed before a full reply'));
    }
  });
}
