/**
 * ACME profiles (draft-aaron-acme-profiles): which profile an order asks for.
 * The directory's `meta.profiles` says what the CA offers; the caller gives an
 * ordered preference. The choice is made from the directory before any order,
 * and a CA's `invalidProfile` answer moves on to the next candidate.
 */
import { CertKeeperError, type CertKeeperErrorOptions } from '../errors.js';
import type { Logger } from '../logger.js';
import type { AcmeDirectory } from './directories.js';
import { isProblem } from './problem.js';

/** None of the profiles asked for is in the directory's meta.profiles: refused before any order. */
export class ProfileUnavailableError extends CertKeeperError {
  readonly requested: readonly string[];
  readonly offered: readonly string[];
  constructor(requested: readonly string[], offered: readonly string[], directoryUrl: string) {
    super('ERR_PROFILE_UNAVAILABLE', `The CA at ${directoryUrl} offers none of the profiles [${requested.join(', ')}]; it offers [${offered.join(', ')}]`);
    this.requested = Object.freeze([...requested]);
    this.offered = Object.freeze([...offered]);
  }
}

/** The CA answered invalidProfile for every profile tried. */
export class InvalidProfileError extends CertKeeperError {
  readonly profiles: readonly string[];
  constructor(profiles: readonly string[], options?: CertKeeperErrorOptions) {
    const detail = (options?.cause as { detail?: unknown } | undefined)?.detail;
    super('ERR_INVALID_PROFILE', `The CA refused the profile(s) [${profiles.join(', ')}] (invalidProfile)${typeof detail === 'string' ? `: ${detail}` : ''}`, options);
    this.profiles = Object.freeze([...profiles]);
  }
}

/** The profile names the directory offers; undefined when it lists none (a CA without profiles). */
export function offeredProfiles(directory: AcmeDirectory): string[] | undefined {
  const profiles = directory.meta?.profiles;
  if (typeof profiles !== 'object' || profiles === null || Array.isArray(profiles)) return undefined;
  const names = Object.keys(profiles);
  return names.length > 0 ? names : undefined;
}

export interface ProfileWish {
  /** What the configuration asks for, in order of preference (per call, else per issuer). */
  preference?: readonly string[] | undefined;
  /** The profile the certificate being renewed was asked for under, used when nothing is configured. */
  kept?: string | undefined;
}

/**
 * The profiles to try, in order; `undefined` stands for "name no profile"
 * (the CA's default). With a preference, the offered ones in the caller's
 * order, or ProfileUnavailableError when none is offered. A kept profile the
 * CA no longer offers falls back to its default: a renewal must not fail for
 * what nobody configured. A CA that lists no profiles gets orders without one.
 */
export function profileCandidates(wish: ProfileWish, directory: AcmeDirectory, directoryUrl: string, log?: Logger): readonly (string | undefined)[] {
  const asked = wish.preference ?? (wish.kept !== undefined ? [wish.kept] : undefined);
  if (asked === undefined || asked.length === 0) return [undefined];
  const offered = offeredProfiles(directory);
  if (offered === undefined) {
    log?.debug({ profiles: asked, directory: directoryUrl }, 'the CA lists no profiles; ordering without one');
    return [undefined];
  }
  const candidates = asked.filter((name) => offered.includes(name));
  if (wish.preference === undefined) return candidates.length > 0 ? [...candidates, undefined] : [undefined];
  if (candidates.length === 0) throw new ProfileUnavailableError(asked, offered, directoryUrl);
  return candidates;
}

/**
 * Runs `attempt` with each candidate until one is not refused with
 * invalidProfile; the last refusal becomes InvalidProfileError. A candidate
 * `undefined` (no profile) is never refused that way, so it ends the list.
 */
export async function withProfiles<T>(candidates: readonly (string | undefined)[], attempt: (profile: string | undefined) => Promise<T>, log?: Logger): Promise<T> {
  const refused: string[] = [];
  for (const [index, profile] of candidates.entries()) {
    try {
      return await attempt(profile);
    } catch (error) {
      if (profile === undefined || !isProblem(error, 'invalidProfile')) throw error;
      refused.push(profile);
      const next = candidates[index + 1];
      if (index === candidates.length - 1) throw new InvalidProfileError(refused, { cause: error });
      log?.warn({ profile, next: next ?? '(CA default)', detail: error.detail }, 'the CA refused the profile; trying the next one');
    }
  }
  // Unreachable with a non-empty list; an empty one orders without a profile.
  return attempt(undefined);
}
