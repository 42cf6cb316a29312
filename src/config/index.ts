/** The keeper's options and their one resolver (see resolve.ts); the defaults they fall back to are in defaults.ts. */
export type * from './options.js';
export { resolveConfig } from './resolve.js';
export { resolveChallenges } from './challenges.js';
export { resolveKeyType, resolveProfile, validateIssuer } from './issuers.js';
export type { CertKeeperEvents } from '../events.js';
export {
  DEFAULT_ASK_TIMEOUT_MS,
  DEFAULT_CA,
  DEFAULT_CACHE_CAPACITY,
  DEFAULT_CHALLENGE_PREFERENCE,
  DEFAULT_CLOSE_TIMEOUT_MS,
  DEFAULT_HTTP01_PORT,
  DEFAULT_KEY_TYPE,
  DEFAULT_LOAD_CONCURRENCY,
  DEFAULT_LOG_LEVEL,
  DEFAULT_MAX_CONCURRENT_ORDERS,
  DEFAULT_ON_DEMAND_DECISION_CACHE_CAPACITY,
  DEFAULT_ON_DEMAND_DECISION_CACHE_TTL_MS,
  DEFAULT_ON_DEMAND_MAX_CONCURRENT_DECISIONS,
  DEFAULT_ON_DEMAND_RATE,
  DEFAULT_ON_DEMAND_TIMEOUT_MS,
  DEFAULT_RENEWALS_PER_SECOND_WHEN_BUSY,
  DEFAULT_RENEWAL_CHECK_INTERVAL_MS,
  DEFAULT_RENEWAL_IDLE_BURST,
  DEFAULT_RENEWAL_MAX_EVENT_LOOP_UTILIZATION,
  DEFAULT_RENEWAL_MIN_IDLE_CPUS,
  DEFAULT_RENEWAL_WINDOW_RATIO,
  DEFAULT_TLS_ALPN01_PORT,
} from '../defaults.js';
