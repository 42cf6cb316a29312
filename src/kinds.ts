/**
 * Small value types shared across layers. They live at the bottom so that
 * defaults.ts, config/ and the CLI can name them without importing the parts
 * that use them (acme/, dns/, issuers/, challenges/ re-export them).
 */

export type KeyType = 'ecdsa-p256' | 'ecdsa-p384' | 'rsa2048' | 'rsa3072' | 'rsa4096';
export const KEY_TYPES: readonly KeyType[] = ['ecdsa-p256', 'ecdsa-p384', 'rsa2048', 'rsa3072', 'rsa4096'];

export type ChallengeType = 'http-01' | 'tls-alpn-01' | 'dns-01';
export const CHALLENGE_TYPES: readonly ChallengeType[] = ['http-01', 'tls-alpn-01', 'dns-01'];

export const TSIG_ALGORITHMS = ['hmac-sha256', 'hmac-sha512', 'hmac-sha1'] as const;
export type TsigAlgorithm = (typeof TSIG_ALGORITHMS)[number];

export interface RetryPolicy {
  /** Attempts in total, the first included. */
  maxAttempts: number;
  /** First backoff delay for network errors and 5xx without Retry-After. */
  baseDelayMs: number;
  maxDelayMs: number;
  /** Longest Retry-After honoured by waiting; longer waits fail with AcmeRateLimitedError. */
  maxRetryAfterMs: number;
  /** Overall budget for all attempts and waits of one operation. */
  deadlineMs: number;
  /**
   * Extra attempts after `badNonce` that survived acme-client's own nonce retries,
   * not counted in maxAttempts: such an attempt costs nothing and is always safe
   * to repeat, and a CA rejecting many nonces must not exhaust the budget meant for outages.
   */
  maxBadNonceRetries: number;
}
