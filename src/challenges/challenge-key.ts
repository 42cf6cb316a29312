import type { ChallengeContext } from './types.js';

/** One challenge of one identifier, as a map key: a token is unique per identifier only. */
export function challengeKey(identifier: string, token: string): string {
  return `${identifier}\n${token}`;
}

/** The key of a presented challenge, under which its solver keeps what cleanUp undoes. */
export function keyOfChallenge(challenge: ChallengeContext): string {
  return challengeKey(challenge.identifier.value, challenge.token);
}
