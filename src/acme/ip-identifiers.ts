/**
 * IP-address identifiers (RFC 8738): which challenges and which profile.
 *
 * Only HTTP-01 and TLS-ALPN-01 validate an IP address. Let's Encrypt issues
 * IP-address certificates only under its `shortlived` profile and refuses an
 * order under any other; a client that names no profile would get its CA's
 * default and a refusal. So an order naming an IP address, with no profile
 * configured, asks for the directory's profile that allows IP addresses.
 *
 * The directory has no machine-readable "allows IP" flag (`meta.profiles`
 * maps names to prose), so the profile is recognised by name.
 */
import type { ChallengeType } from '../challenges/types.js';
import { IpChallengeError } from '../errors.js';
import type { Identifier } from '../names.js';
import type { AcmeDirectory } from './directories.js';

/** The challenge types that can validate an IP address (RFC 8738 §7: DNS-01 cannot). */
export const IP_CHALLENGE_TYPES: readonly ChallengeType[] = Object.freeze(['http-01', 'tls-alpn-01']);

/** Profile names CAs use for the only profile that issues IP-address certificates. */
export const IP_PROFILE_NAMES: readonly string[] = Object.freeze(['shortlived']);

/** Whether the identifiers name an IP address (RFC 8738). */
export function hasIpIdentifier(identifiers: readonly Identifier[]): boolean {
  return identifiers.some((id) => id.type === 'ip');
}

/**
 * The profile an order for `identifiers` should name when none is configured:
 * for an order with an IP address, the directory's profile that allows IP
 * addresses; otherwise (no IP, a CA without profiles, none of them fits)
 * undefined, meaning "name no profile". A configured profile always wins.
 */
export function profileForIdentifiers(identifiers: readonly Identifier[], directory: AcmeDirectory, configured?: string): string | undefined {
  if (configured !== undefined) return configured;
  if (!hasIpIdentifier(identifiers)) return undefined;
  const profiles = directory.meta?.profiles;
  if (typeof profiles !== 'object' || profiles === null || Array.isArray(profiles)) return undefined;
  return IP_PROFILE_NAMES.find((name) => Object.hasOwn(profiles, name));
}

/**
 * Refuses, before any order, identifiers with an IP address when none of the
 * configured challenge types can validate one (only DNS-01 is enabled).
 */
export function assertIpSolvable(identifiers: readonly Identifier[], configured: readonly ChallengeType[]): void {
  const ip = identifiers.find((id) => id.type === 'ip');
  if (ip !== undefined && !configured.some((type) => IP_CHALLENGE_TYPES.includes(type))) throw new IpChallengeError(ip.value, configured);
}
