import type { Identifier } from '../names.js';
import type { ChallengeType } from '../kinds.js';
export { CHALLENGE_TYPES, type ChallengeType } from '../kinds.js';

export interface ChallengeContext {
  identifier: Identifier;
  type: ChallengeType;
  token: string;
  /** RFC 8555 key authorization `token.thumbprint`. */
  keyAuthorization: string;
  /** Issuer key, so shared-storage solvers can file the token where peers look for it. */
  issuerKey: string;
  signal?: AbortSignal | undefined;
}

/**
 * Makes one challenge answerable. `cleanUp` is always called after
 * `present` (even when the caller aborted or validation failed).
 */
export interface Solver {
  present(challenge: ChallengeContext): Promise<void>;
  /** Optional: wait until the challenge is visible to the CA (e.g. DNS propagation). */
  wait?(challenge: ChallengeContext): Promise<void>;
  cleanUp(challenge: ChallengeContext): Promise<void>;
}
