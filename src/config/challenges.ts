/**
 * Challenge settings, for the keeper and for one manageSync/manageAsync call:
 * each type resolved on its own, an explicit `false` disables it.
 */
import type { DnsProvider } from '../dns/types.js';
import { InvalidOptionError } from '../errors.js';
import { CHALLENGE_TYPES } from '../kinds.js';
import { optionalBoolean, optionalString, port } from '../validate.js';
import { DEFAULT_CHALLENGE_PREFERENCE, DEFAULT_HTTP01_PORT, DEFAULT_TLS_ALPN01_PORT } from '../defaults.js';
import type { ChallengeOptions, Dns01Options, Http01Options, ResolvedChallenges, TlsAlpn01Options } from './options.js';

/** Resolves per-call settings against the keeper's config. */
export function resolveChallenges(input: ChallengeOptions | undefined, option: string): ResolvedChallenges {
  if (input !== undefined && (typeof input !== 'object' || input === null)) throw new InvalidOptionError(option, 'must be an object');
  const http01 = resolveListened(input?.http01, `${option}.http01`, { port: DEFAULT_HTTP01_PORT, listener: true });
  const tlsAlpn01 = resolveListened(input?.tlsAlpn01, `${option}.tlsAlpn01`, { port: DEFAULT_TLS_ALPN01_PORT, listener: false });
  const dns01 = resolveDns01(input?.dns01, `${option}.dns01`);
  let preference = DEFAULT_CHALLENGE_PREFERENCE;
  if (input?.preference !== undefined) {
    if (!Array.isArray(input.preference) || input.preference.length === 0) throw new InvalidOptionError(`${option}.preference`, 'must be a non-empty array');
    for (const type of input.preference) {
      if (!CHALLENGE_TYPES.includes(type)) throw new InvalidOptionError(`${option}.preference`, `unknown challenge type "${String(type)}"`);
    }
    preference = [...new Set(input.preference)];
  }
  if (http01 === false && tlsAlpn01 === false && dns01 === false) {
    throw new InvalidOptionError(option, 'every challenge type is disabled');
  }
  return Object.freeze({ http01, tlsAlpn01, dns01, preference: Object.freeze([...preference]) });
}

/** HTTP-01 and TLS-ALPN-01 take the same settings: where the standalone listener binds, and whether it opens at all. */
function resolveListened(
  value: Http01Options | TlsAlpn01Options | false | undefined,
  option: string,
  defaults: { port: number; listener: boolean },
): Readonly<Required<Http01Options>> | false {
  if (value === false) return false;
  if (value !== undefined && (typeof value !== 'object' || value === null)) throw new InvalidOptionError(option, 'must be an object or false');
  return Object.freeze({
    port: port(value?.port, `${option}.port`) ?? defaults.port,
    host: optionalString(value?.host, `${option}.host`) ?? '',
    listener: optionalBoolean(value?.listener, `${option}.listener`) ?? defaults.listener,
  });
}

function resolveDns01(value: Dns01Options | false | undefined, option: string): ResolvedChallenges['dns01'] {
  if (value === undefined || value === false) return false;
  if (typeof value !== 'object' || value === null) throw new InvalidOptionError(option, 'must be an object or false');
  const provider = value.provider as Partial<DnsProvider> | undefined;
  if (!provider || typeof provider.addTxtRecord !== 'function' || typeof provider.removeTxtRecord !== 'function') {
    throw new InvalidOptionError(`${option}.provider`, 'must implement addTxtRecord() and removeTxtRecord()');
  }
  const p = value.propagation;
  if (p !== undefined && (typeof p !== 'object' || p === null)) throw new InvalidOptionError(`${option}.propagation`, 'must be an object');
  // Field-by-field validation is done by the DNS-01 solver when it is built.
  return Object.freeze({ provider: value.provider, propagation: Object.freeze({ ...(p ?? {}) }) });
}
