import type { Identifier } from '../names.js';

export type ChallengeType = 'http-01' | 'tls-alpn-01' | 'dns-01';
export const CHALLENGE_TYPES: readonly ChallengeType[] = ['http-01', 'tls-alpn-01', 'dns-01'];

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
