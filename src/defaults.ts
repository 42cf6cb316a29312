/**
 * Every default in one place. Modules import their defaults from here (and
 * re-export them where they were public), so one name has one value.
 */
import type { ChallengeType, KeyType, RetryPolicy, TsigAlgorithm } from './kinds.js';
import type { LogLevel } from './logger.js';

const MINUTE = 60_000;
const HOUR_MS = 60 * MINUTE;
const DAY_MS = 24 * HOUR_MS;

// --- keeper options (resolveConfig)
export const DEFAULT_RENEWAL_WINDOW_RATIO = 1 / 3;
export const DEFAULT_MAX_CONCURRENT_ORDERS = 10;
export const DEFAULT_CHALLENGE_PREFERENCE: readonly ChallengeType[] = ['http-01', 'tls-alpn-01', 'dns-01'];
export const DEFAULT_CACHE_CAPACITY = 10_000;
export const DEFAULT_ON_DEMAND_TIMEOUT_MS = 60_000;
export const DEFAULT_ASK_TIMEOUT_MS = 10_000;
export const DEFAULT_ON_DEMAND_RATE = { capacity: 10, refillAmount: 10, refillIntervalMs: 60_000 } as const;
/** Level of the default logger: a library is quiet unless something needs attention (failures, expiry). */
export const DEFAULT_LOG_LEVEL: LogLevel = 'warn';
/** Renewals are rate-limited while the event loop is busier than this (see RenewalPacer)... */
export const DEFAULT_RENEWAL_MAX_EVENT_LOOP_UTILIZATION = 0.5;
/** ...or while fewer of the machine's CPUs than this are idle... */
export const DEFAULT_RENEWAL_MIN_IDLE_CPUS = 1;
/** ...to this many renewals started per second. */
export const DEFAULT_RENEWALS_PER_SECOND_WHEN_BUSY = 10;
/** Window over which load is measured before renewals start; up to DEFAULT_RENEWAL_IDLE_BURST start per window when not busy. */
export const DEFAULT_RENEWAL_CHECK_INTERVAL_MS = 100;
export const DEFAULT_RENEWAL_IDLE_BURST = 10;
export const DEFAULT_KEY_TYPE: KeyType = 'ecdsa-p256';
// --- CLI
export const DEFAULT_CA = 'letsencrypt';
export const DEFAULT_HTTP01_PORT = 80;
export const DEFAULT_TLS_ALPN01_PORT = 443;
export const DEFAULT_CLI_LOG_LEVEL: LogLevel = 'warn';
export const DEFAULT_DEMO_PORT = 8443;
// --- manager
/** Above this many names in one call, stored certificates are read as sidecars only and loaded on their first handshake. */
export const DEFAULT_EAGER_LOAD_LIMIT = 1_000;
/** Concurrent storage reads while loading many stored certificates. */
export const DEFAULT_LOAD_CONCURRENCY = 32;
/**
 * Concurrent background sidecar reads after a large manageSync. The warm-up is CPU-bound against a local store
 * (2 readers schedule as many names per second as 8), and every extra reader is a callback a handshake's lazy
 * load queues behind: 8 gave a lazy p99 of 70-110 ms on a 1M Redis store, 2 gave 17.5 ms.
 */
export const DEFAULT_WARM_UP_CONCURRENCY = 2;
/** Longest a warm-up step waits for handshake loads in flight to end (handshakes first, progress still guaranteed). */
export const DEFAULT_WARM_UP_YIELD_MS = 20;
// --- renewal and backoff
/** Wall time moving this much more (or less) than monotonic time between two looks is a jump: a sleep or a clock set by hand. */
export const DEFAULT_CLOCK_JUMP_THRESHOLD_MS = 5_000;
/** Monotonic time between two looks for a jump (two clock reads each): the longest a wake-up goes unnoticed. */
export const DEFAULT_CLOCK_JUMP_CHECK_INTERVAL_MS = 1_000;
/** A handshake served an expired or not yet valid certificate reports it again at most this often. */
export const DEFAULT_INVALID_SERVED_RECHECK_MS = 60_000;
/** Short-lived certificates renew earlier: half their lifetime is left. */
export const DEFAULT_SHORT_LIVED_RENEWAL_RATIO = 1 / 2;
/**
 * Random jitter, as a fraction of the renewal window, subtracted from the due
 * time so certificates issued together do not all renew in the same second.
 */
export const DEFAULT_RENEWAL_JITTER_RATIO = 0.05;
/**
 * Waits after the 1st, 2nd, 3rd and later consecutive failures, as Let's
 * Encrypt's integration guide suggests: about 1 minute, 10 minutes,
 * 100 minutes, then daily (the last step repeats).
 */
export const DEFAULT_BACKOFF_STEPS_MS: readonly number[] = Object.freeze([MINUTE, 10 * MINUTE, 100 * MINUTE, 24 * 60 * MINUTE]);
/** Up to this fraction of a step is added at random, so failing certificates do not retry in lock-step. */
export const DEFAULT_BACKOFF_JITTER_RATIO = 0.1;
/**
 * Floor between two attempts for one certificate. Let's Encrypt allows
 * 5 failed authorizations per identifier per hour (one back every 12 minutes);
 * the default steps stay under that on their own, so the floor is the first step.
 */
export const DEFAULT_BACKOFF_MIN_INTERVAL_MS = MINUTE;
// --- ACME protocol
/**
 * First poll soon after answering a challenge: a CA often validates within tens of ms (Pebble in
 * under 10); the interval then backs off (x1.5 up to the maximum), so a slow CA sees a few more polls.
 */
export const DEFAULT_POLL_INTERVAL_MS = 25;
export const DEFAULT_MAX_POLL_INTERVAL_MS = 5_000;
export const DEFAULT_ORDER_TIMEOUT_MS = 5 * 60_000;
export const DEFAULT_RETRY_POLICY: Readonly<RetryPolicy> = Object.freeze({
  maxAttempts: 4,
  baseDelayMs: 500,
  maxDelayMs: 10_000,
  maxRetryAfterMs: 60_000,
  deadlineMs: 90_000,
  maxBadNonceRetries: 20,
});
export const DEFAULT_ACME_REQUEST_TIMEOUT_MS = 30_000;
/** Registration takes a few requests; a holder stuck far longer than this has a problem of its own. */
export const DEFAULT_ACCOUNT_LOCK_TIMEOUT_MS = 120_000;
/** Used when the CA sends no (usable) Retry-After. */
export const DEFAULT_ARI_RETRY_AFTER_MS = 6 * 60 * MINUTE;
/** A failed ARI request the CA gave no Retry-After for is asked again after this, doubling per failure in a row up to DEFAULT_ARI_RETRY_AFTER_MS. */
export const DEFAULT_ARI_FAILURE_RETRY_MS = MINUTE;
export const DEFAULT_ARI_FETCH_TIMEOUT_MS = 30_000;
/** renewalInfo requests per CA (directory URL) per process: 20 at once at most, then one every 50 ms (20 a second). */
export const DEFAULT_ARI_RATE_LIMIT = Object.freeze({ capacity: 20, refillAmount: 1, refillIntervalMs: 50 });
/** A peer holds a certificate's lock (it polls ARI for it, or renews it): read its stored answer after this long. */
export const DEFAULT_ARI_PEER_WAIT_MS = 30_000;
// --- internal CA and PKCS#12
export const DEFAULT_INTERNAL_CA_NAME = 'local';
export const DEFAULT_LEAF_LIFETIME_MS = 24 * HOUR_MS;
export const DEFAULT_INTERMEDIATE_LIFETIME_MS = 7 * DAY_MS;
export const DEFAULT_ROOT_LIFETIME_MS = 3652 * DAY_MS;
/** PBKDF2 and MAC-KDF iteration count (OpenSSL 3 uses 2048; more slows password guessing). */
export const DEFAULT_PKCS12_ITERATIONS = 10_000;
// --- DNS-01 and DNS providers
export const DEFAULT_PROPAGATION_TIMEOUT_MS = 120_000;
export const DEFAULT_PROPAGATION_INTERVAL_MS = 2_000;
export const DEFAULT_PROPAGATION_QUERY_TIMEOUT_MS = 5_000;
export const DEFAULT_DNS01_TTL = 60;
export const DEFAULT_DNS_QUERY_TIMEOUT_MS = 5_000;
export const DEFAULT_RFC2136_TIMEOUT_MS = 10_000;
export const DEFAULT_RFC2136_PORT = 53;
export const DEFAULT_TSIG_ALGORITHM: TsigAlgorithm = 'hmac-sha256';
/** Allowed clock difference between client and server, seconds (RFC 8945 recommends 300). */
export const DEFAULT_TSIG_FUDGE_SECONDS = 300;
export const DEFAULT_POWERDNS_SERVER_ID = 'localhost';
export const DEFAULT_POWERDNS_TIMEOUT_MS = 10_000;
export const DEFAULT_EXEC_TIMEOUT_MS = 60_000;
export const DEFAULT_CHALLTESTSRV_TIMEOUT_MS = 5_000;
// --- storage
export const DEFAULT_LOCK_STALE_MS = 10_000;
export const DEFAULT_LOCK_TTL_MS = 10_000;
export const DEFAULT_LOCK_POLL_MS = 500;
// --- TLS
export const DEFAULT_LOAD_TIMEOUT_MS = 10_000;
export const DEFAULT_NEGATIVE_TTL_MS = 10_000;
export const DEFAULT_NEGATIVE_CAPACITY = 10_000;
/** Quiet time after the last event before the files are read. */
export const DEFAULT_RELOAD_DEBOUNCE_MS = 100;
/** A burst of events delays the check at most this long. */
export const DEFAULT_RELOAD_MAX_WAIT_MS = 1_000;
/** Slow re-check in case a file-system event was missed; 0 disables it. */
export const DEFAULT_RELOAD_RECHECK_MS = 60_000;
// --- HTTP servers
export const DEFAULT_HTTP_PORT = 80;
/** Longest a client may take to send the request headers (slowloris). */
export const DEFAULT_HEADERS_TIMEOUT_MS = 10_000;
/** Longest a client may take to send a whole request, body included. */
export const DEFAULT_HTTP_REQUEST_TIMEOUT_MS = 60_000;
/** How long an idle HTTP/1 keep-alive connection stays open. */
export const DEFAULT_KEEP_ALIVE_TIMEOUT_MS = 5_000;
/** Inactivity after which a connection or HTTP/2 session is closed. */
export const DEFAULT_IDLE_TIMEOUT_MS = 120_000;
/** How long close() lets requests in flight finish before it cuts connections. */
export const DEFAULT_CLOSE_TIMEOUT_MS = 10_000;
export const DEFAULT_HTTPS_PORT = 443;
// --- doctor
export const DEFAULT_DOCTOR_TIMEOUT_MS = 10_000;

/** On-demand decisions (decide() calls, ask requests) in progress at once; one more fails its handshake at once. */
export const DEFAULT_ON_DEMAND_MAX_CONCURRENT_DECISIONS = 64;
/** How long an on-demand answer (allow or deny) is reused before decide()/askUrl is consulted again. */
export const DEFAULT_ON_DEMAND_DECISION_CACHE_TTL_MS = 30_000;
/** Answers remembered at most (oldest dropped first). */
export const DEFAULT_ON_DEMAND_DECISION_CACHE_CAPACITY = 10_000;
/** What an error carries of a program's output by default (src/redact.ts): its last lines, bounded in bytes. */
export const DEFAULT_TAIL_LINES = 10;
export const DEFAULT_TAIL_BYTES = 1024;

// --- notifications and CLI output
/** Per delivery attempt. */
export const DEFAULT_NOTIFY_TIMEOUT_MS = 10_000;
/** Retries after the first attempt (so 4 attempts in all). */
export const DEFAULT_NOTIFY_RETRIES = 3;
/** First retry delay; doubled for each further retry. */
export const DEFAULT_NOTIFY_RETRY_DELAY_MS = 1_000;
/** A certificate is expiring soon with this fraction of its lifetime left (renewal normally starts at 1/3). */
export const DEFAULT_NOTIFY_EXPIRING_RATIO = 1 / 5;
/** Receivers should refuse a timestamp further than this from their clock (replay protection). */
export const DEFAULT_SIGNATURE_TOLERANCE_SECONDS = 300;
/** The CLI's stderr: human lines unless `--log-format json`. */
export const DEFAULT_LOG_FORMAT = 'human' as 'human' | 'json';

// --- revocation checks (revocationCheck)
/** A served certificate's CRL and OCSP status are looked at this often (sooner when a cached answer runs out). */
export const DEFAULT_REVOCATION_CHECK_INTERVAL_MS = HOUR_MS;
/** Per attempt at a CRL or an OCSP responder. */
export const DEFAULT_REVOCATION_FETCH_TIMEOUT_MS = 10_000;
/** Retries after the first attempt; the first retry waits DEFAULT_REVOCATION_RETRY_DELAY_MS, then doubling. */
export const DEFAULT_REVOCATION_FETCH_RETRIES = 2;
export const DEFAULT_REVOCATION_RETRY_DELAY_MS = 1_000;
/** Let's Encrypt shards its CRLs to a few MB; a larger answer is refused. */
export const DEFAULT_REVOCATION_MAX_CRL_BYTES = 16 * 1024 * 1024;

// --- test CA (certkeeper/testing startTestCa)
/** As Let's Encrypt offers them in 2026 (the classic lifetime is shrinking; 90 days today). */
export const DEFAULT_TEST_CA_PROFILES: Readonly<Record<string, Readonly<{ lifetimeMs: number; description: string }>>> = Object.freeze({
  classic: Object.freeze({ lifetimeMs: 90 * DAY_MS, description: 'The same profile you have been getting all along (90 days)' }),
  tlsserver: Object.freeze({ lifetimeMs: 45 * DAY_MS, description: 'Server authentication only, 45 days' }),
  shortlived: Object.freeze({ lifetimeMs: 160 * HOUR_MS, description: 'Short-lived certificates, 160 hours' }),
});
export const DEFAULT_TEST_CA_PROFILE = 'classic';
export const DEFAULT_TEST_CA_RENEWAL_INFO_RETRY_AFTER_SECONDS = 6 * 3600;
export const DEFAULT_TEST_CA_CRL_LIFETIME_MS = HOUR_MS;
/** Let's Encrypt runs no OCSP since 2025: certificates name no responder unless a test asks. */
export const DEFAULT_TEST_CA_OCSP = false;

// --- the daemon (certkeeper run) and deploy hooks
/** The daemon says what it does (obtained, files written, hooks run) unless told otherwise. */
export const DEFAULT_DAEMON_LOG_LEVEL = 'info' as const;
/** A deploy hook (e.g. `nginx -s reload`) is killed after this long. */
export const DEFAULT_DEPLOY_HOOK_TIMEOUT_MS = 60_000;
/** Retries of a failed deploy hook after its first run (the certificate is not renewed again). */
export const DEFAULT_DEPLOY_HOOK_RETRIES = 3;
/** First retry delay of a deploy hook; doubled for each further retry. */
export const DEFAULT_DEPLOY_HOOK_RETRY_DELAY_MS = 5_000;
/** cert.pem, chain.pem, fullchain.pem: public. */
export const DEFAULT_CERT_FILE_MODE = 0o644;
/** privkey.pem and the combined PEM hold the private key. */
export const DEFAULT_KEY_FILE_MODE = 0o600;
/** The daemon's HTTP-01 endpoint behind a proxy listens on loopback unless told otherwise. */
export const DEFAULT_CHALLENGE_PROXY_HOST = '127.0.0.1';
