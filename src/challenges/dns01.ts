/**
 * DNS-01 (RFC 8555 section 8.4): a TXT record at `_acme-challenge.<name>`
 * holding base64url(SHA-256(key authorization)), written through a
 * DnsProvider. When `_acme-challenge.<name>` is a CNAME (delegating the
 * challenge to a zone whose credentials are less precious), the record is
 * written at the CNAME's target, and propagation is checked there.
 */
import { createHash } from 'node:crypto';
import { type Clock, systemClock } from '../clock.js';
import { ChallengeFailedError, InvalidOptionError } from '../errors.js';
import type { Logger } from '../logger.js';
import { type DnsServer, resolveCname, systemResolvers } from '../dns/query.js';
import type { DnsProvider, DnsRecord } from '../dns/types.js';
import { type PropagationOptions, type ResolvedPropagationOptions, resolvePropagationOptions, waitForTxtRecord } from './dns-propagation.js';
import type { ChallengeContext, Solver } from './types.js';
import { keyOfChallenge } from './challenge-key.js';
import { DEFAULT_DNS01_TTL } from '../defaults.js';
export { DEFAULT_DNS01_TTL };

export const ACME_CHALLENGE_LABEL = '_acme-challenge';

export interface Dns01SolverOptions {
  provider: DnsProvider;
  propagation?: PropagationOptions | undefined;
  /** TTL of the TXT record in seconds (default 60). */
  ttl?: number | undefined;
  /** Follow a CNAME at `_acme-challenge.<name>` and write at its target (default true). */
  followCname?: boolean | undefined;
  clock?: Clock | undefined;
  logger?: Logger | undefined;
}

/** `_acme-challenge.<name>` for an identifier, the wildcard label removed. */
export function dns01RecordName(identifier: string): string {
  const name = identifier.startsWith('*.') ? identifier.slice(2) : identifier;
  return `${ACME_CHALLENGE_LABEL}.${name.endsWith('.') ? name.slice(0, -1) : name}`;
}

/** The TXT value for a key authorization: base64url(SHA-256(keyAuthorization)). */
export function dns01TxtValue(keyAuthorization: string): string {
  return createHash('sha256').update(keyAuthorization, 'utf8').digest('base64url');
}

export class Dns01Solver implements Solver {
  readonly provider: DnsProvider;
  readonly propagation: ResolvedPropagationOptions;
  readonly #ttl: number;
  readonly #followCname: boolean;
  readonly #clock: Clock;
  readonly #log: Logger | undefined;
  /** Records written by present(), by challenge, so wait() and cleanUp() use the same name and value. */
  readonly #records = new Map<string, DnsRecord>();

  constructor(options: Dns01SolverOptions) {
    if (typeof options !== 'object' || options === null) throw new InvalidOptionError('dns01', 'must be an object with a provider');
    const { provider } = options;
    if (!provider || typeof provider.addTxtRecord !== 'function' || typeof provider.removeTxtRecord !== 'function') {
      throw new InvalidOptionError('dns01.provider', 'must be a DnsProvider with addTxtRecord() and removeTxtRecord()');
    }
    const ttl = options.ttl ?? DEFAULT_DNS01_TTL;
    if (!Number.isInteger(ttl) || ttl < 0 || ttl > 2_147_483_647) throw new InvalidOptionError('dns01.ttl', 'must be a whole number of seconds');
    if (options.followCname !== undefined && typeof options.followCname !== 'boolean') throw new InvalidOptionError('dns01.followCname', 'must be a boolean');
    this.provider = provider;
    this.propagation = resolvePropagationOptions(options.propagation ?? {}, 'dns01.propagation');
    this.#ttl = ttl;
    this.#followCname = options.followCname ?? true;
    this.#clock = options.clock ?? systemClock;
    this.#log = options.logger?.child({ component: 'dns-01', provider: provider.name });
  }

  async present(challenge: ChallengeContext): Promise<void> {
    if (challenge.identifier.type === 'ip') {
      throw new ChallengeFailedError(challenge.identifier.value, 'dns-01', 'DNS-01 cannot validate an IP address (RFC 8738); use http-01 or tls-alpn-01');
    }
    const name = await this.#recordName(challenge);
    const record: DnsRecord = { name, value: dns01TxtValue(challenge.keyAuthorization), ttl: this.#ttl };
    this.#records.set(keyOfChallenge(challenge), record);
    await this.provider.addTxtRecord(record, challenge.signal);
    this.#log?.debug({ identifier: challenge.identifier.value, recordName: name }, 'DNS-01 TXT record added');
  }

  async wait(challenge: ChallengeContext): Promise<void> {
    if (this.propagation.skip) return;
    const record = this.#records.get(keyOfChallenge(challenge));
    if (!record) return;
    await waitForTxtRecord(record.name, record.value, this.propagation, { clock: this.#clock, signal: challenge.signal, logger: this.#log });
  }

  async cleanUp(challenge: ChallengeContext): Promise<void> {
    const key = keyOfChallenge(challenge);
    const record = this.#records.get(key);
    if (!record) return;
    this.#records.delete(key);
    // Not passing the challenge's signal: cleanup must run even when the caller aborted.
    await this.provider.removeTxtRecord(record);
    this.#log?.debug({ identifier: challenge.identifier.value, recordName: record.name }, 'DNS-01 TXT record removed');
  }

  async #recordName(challenge: ChallengeContext): Promise<string> {
    const name = dns01RecordName(challenge.identifier.value);
    if (!this.#followCname) return name;
    const resolvers: readonly DnsServer[] = this.propagation.lookupResolvers ?? this.propagation.resolvers ?? systemResolvers();
    try {
      const target = await resolveCname(name, resolvers, { signal: challenge.signal, timeoutMs: this.propagation.queryTimeoutMs });
      if (target !== name) this.#log?.info({ recordName: name, target }, 'DNS-01 record delegated by CNAME');
      return target;
    } catch (error) {
      if (challenge.signal?.aborted) throw error;
      // No answer about a CNAME: write where RFC 8555 says the record lives.
      this.#log?.warn({ err: error, recordName: name }, 'CNAME lookup failed; writing the record at its own name');
      return name;
    }
  }
}
