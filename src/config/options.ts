/**
 * The keeper's option types: the public ones (all optional, as callers write
 * them) and the resolved ones (all set, frozen) that resolveConfig produces
 * once and every part receives.
 */
import type { Clock } from '../clock.js';
import type { DnsProvider } from '../dns/types.js';
import type { EventName, Listener } from '../events.js';
import type { Issuer } from '../issuers/types.js';
import type { ChallengeType, KeyType } from '../kinds.js';
import type { Logger, LogLevel } from '../logger.js';
import type { NotifyOptions, ResolvedNotify } from '../notify/options.js';
import type { PropagationOptions } from '../challenges/dns-propagation.js';
import type { Storage } from '../storage/types.js';
import type { ResolvedRevocationCheck, RevocationCheckOptions } from './revocation.js';

export type { ResolvedRevocationCheck, RevocationCheckOptions };

export interface ExternalAccountBinding {
  kid: string;
  /** Base64url HMAC key given by the CA. Never logged. */
  hmacKey: string;
}

export interface Http01Options {
  /** Port of the standalone HTTP-01 listener (default 80). */
  port?: number;
  /** Address to bind (default all interfaces). */
  host?: string;
  /**
   * Open a standalone listener while a challenge is pending (default true).
   * Set false when your own server mounts `keeper.httpChallengeHandler()`.
   */
  listener?: boolean;
}

export interface TlsAlpn01Options {
  /** Port of the standalone TLS-ALPN-01 listener, used only when no server of yours serves keeper.tlsOptions() there. */
  port?: number;
  host?: string;
  /** Open a standalone listener while a challenge is pending (default false: your HTTPS server answers through tlsOptions()). */
  listener?: boolean;
}

/** DNS-01 propagation check settings (see Dns01Solver): timeoutMs, intervalMs, resolvers, authoritativeServers, skip... */
export type DnsPropagationOptions = PropagationOptions;

export interface Dns01Options {
  provider: DnsProvider;
  propagation?: DnsPropagationOptions;
}

export interface ChallengeOptions {
  /** HTTP-01; `false` disables it. */
  http01?: Http01Options | false;
  /** TLS-ALPN-01; `false` disables it. */
  tlsAlpn01?: TlsAlpn01Options | false;
  /** DNS-01 through a provider; required for wildcards. */
  dns01?: Dns01Options | false;
  /** Order in which offered challenge types are tried (default http-01, tls-alpn-01, dns-01). */
  preference?: ChallengeType[];
}

export interface RateLimitOptions {
  /** Orders allowed in a burst. */
  capacity: number;
  /** Orders added back every `refillIntervalMs`. */
  refillAmount: number;
  refillIntervalMs: number;
}

export interface OnDemandOptions {
  /** Decides whether a name seen in a handshake may get a certificate; `signal` aborts when the handshake goes away. */
  decide?: (name: string, options: { signal: AbortSignal }) => boolean | Promise<boolean>;
  /** GET `askUrl?domain=<name>`: a 2xx answer allows (10 s timeout, redirects not followed). */
  askUrl?: string;
  /** Caps new on-demand orders (default 10 per minute). */
  rateLimit?: RateLimitOptions;
  /** Longest a handshake waits for an on-demand certificate (default 60 s). */
  timeoutMs?: number;
  /** Longest the askUrl endpoint may take to answer before the name is denied (default 10 s). */
  askTimeoutMs?: number;
  /** Decisions (decide() calls, ask requests) in progress at once; beyond it a handshake fails at once (default 64). */
  maxConcurrentDecisions?: number;
  /** How long an answer (allow or deny) is reused; 0 or false asks every time (default 30 s). */
  decisionCacheTtlMs?: number | false;
}

/** An ACME CA to build with the keeper's solvers; unset fields come from the keeper's options. */
export interface AcmeIssuerSpec {
  type: 'acme';
  ca?: string;
  email?: string;
  agreeToTerms?: boolean;
  externalAccountBinding?: ExternalAccountBinding;
  caCertificates?: string | string[];
  preferredChain?: string;
  /** ACME profile, or an ordered preference of them (first one the CA offers); default: the keeper's `profile`. */
  profile?: string | string[];
}

/** The built-in internal CA (no network): for development, private networks, or as the last fallback. */
export interface InternalIssuerSpec {
  type: 'internal';
  /** CA name; separate names are separate CAs (default `local`). */
  name?: string;
  leafLifetimeMs?: number;
}

export type IssuerSpec = Issuer | AcmeIssuerSpec | InternalIssuerSpec;

/**
 * Renewals of certificates that are still valid yield to traffic: while the
 * event loop is busier than `maxEventLoopUtilization` (default 0.5) or fewer
 * than `minIdleCpus` of the machine's CPUs are idle (default 1), at most
 * `renewalsPerSecondWhenBusy` (default 10) start per second. Obtaining a
 * certificate that is missing or expired is never held back.
 */
export interface RenewalPacingOptions {
  maxEventLoopUtilization?: number;
  minIdleCpus?: number;
  renewalsPerSecondWhenBusy?: number;
}

/** Settings that may differ per manageSync/manageAsync call. */
export interface ManageSettings {
  issuers?: IssuerSpec[];
  keyType?: KeyType;
  challenges?: ChallengeOptions;
  /** ACME profile, or an ordered preference of them, for these names; wins over the issuers' own `profile`. */
  profile?: string | string[];
}

export type EventListeners = { [E in EventName]?: Listener<E> };

export interface CertKeeperOptions {
  /** Contact e-mail for the ACME account. */
  email?: string;
  /** Accept the CA's terms of service (required to create an ACME account). */
  agreeToTerms?: boolean;
  /** `letsencrypt` (default), `letsencrypt-staging`, `zerossl`, `google`, `google-staging`, or a directory URL. */
  ca?: string;
  /** Extra trusted roots (PEM) for the CA's own HTTPS, e.g. an internal ACME server. */
  caCertificates?: string | string[];
  externalAccountBinding?: ExternalAccountBinding;
  /** Issuers tried in order (fallback to the next when one fails); default: the ACME CA named by `ca`. */
  issuers?: IssuerSpec[];
  /** Default: FileStorage under $XDG_DATA_HOME/certkeeper. */
  storage?: Storage;
  keyType?: KeyType;
  challenges?: ChallengeOptions;
  /** Renew when this fraction of the lifetime remains (default 1/3). */
  renewalWindowRatio?: number;
  /** Orders in flight at once (default 10). */
  maxConcurrentOrders?: number;
  /** How renewals yield to traffic; `false` starts them as soon as an order slot is free. */
  renewalPacing?: RenewalPacingOptions | false;
  /** Paces new orders per issuer; `false` for none. Default: the CA's published limits. */
  rateLimit?: RateLimitOptions | false;
  /** Obtain certificates during handshakes for names not managed yet. Off by default. */
  onDemand?: OnDemandOptions | false;
  /** Most certificates kept as live TLS contexts (default 10,000); others load on their next handshake. */
  cacheCapacity?: number;
  /** Name whose certificate is served to clients without SNI. */
  defaultServerName?: string;
  /** Preferred chain: issuer common name of the root/intermediate to prefer. */
  preferredChain?: string;
  /**
   * ACME profile (`'shortlived'`), or an ordered preference (`['tlsserver', 'classic']`): the first one the CA's
   * directory offers. For the ACME issuers built from `ca` or `{ type: 'acme' }` specs without a profile of their own.
   */
  profile?: string | string[];
  logger?: Logger;
  /** Level of the default pino logger (default info). Ignored when `logger` is given. */
  logLevel?: LogLevel;
  clock?: Clock;
  on?: EventListeners;
  /**
   * close() waits this long for work in flight (an issuer or a storage call that ignores the abort) to end;
   * then it resolves anyway and logs a warn naming the abandoned work (default 10 000 ms; 0: do not wait).
   */
  closeTimeoutMs?: number;
  /** Webhook and/or exec hook told when a renewal keeps failing, a certificate is expiring soon, renewed, or replaced early by ARI. Off by default. */
  notify?: NotifyOptions | false;
  /** Checks served certificates against the CRL and OCSP responder they name, replaces a revoked one, staples OCSP; `false` turns it off. On by default. */
  revocationCheck?: RevocationCheckOptions | false;
  /**
   * Notices a sleep or a clock set by hand (wall time moving unlike monotonic time) and plans every renewal again at
   * once. Needs a clock with monotonic() (the system clock has one). `false` turns it off.
   */
  clockJump?: ClockJumpOptions | false;
}

export interface ClockJumpOptions {
  /** Smallest divergence treated as a jump (default 5 000 ms). */
  thresholdMs?: number;
  /** Monotonic time between two looks (default 1 000 ms): the longest a wake-up goes unnoticed. */
  checkIntervalMs?: number;
}

export interface ResolvedChallenges {
  readonly http01: Readonly<Required<Http01Options>> | false;
  readonly tlsAlpn01: Readonly<Required<TlsAlpn01Options>> | false;
  readonly dns01: { readonly provider: DnsProvider; readonly propagation: Readonly<PropagationOptions> } | false;
  readonly preference: readonly ChallengeType[];
}

export interface ResolvedConfig {
  readonly email: string | undefined;
  readonly agreeToTerms: boolean;
  readonly ca: string;
  readonly caCertificates: readonly string[];
  readonly externalAccountBinding: Readonly<ExternalAccountBinding> | undefined;
  readonly issuers: readonly IssuerSpec[] | undefined;
  readonly storage: Storage | undefined;
  readonly keyType: KeyType;
  readonly challenges: ResolvedChallenges;
  readonly renewalWindowRatio: number;
  readonly maxConcurrentOrders: number;
  readonly renewalPacing:
    | {
        readonly maxEventLoopUtilization: number;
        readonly minIdleCpus: number;
        readonly renewalsPerSecondWhenBusy: number;
        readonly checkIntervalMs: number;
        readonly idleBurst: number;
      }
    | false;
  readonly rateLimit: Readonly<RateLimitOptions> | false | undefined;
  readonly onDemand:
    | {
        readonly decide: ((name: string, options: { signal: AbortSignal }) => boolean | Promise<boolean>) | undefined;
        readonly askUrl: string | undefined;
        readonly rateLimit: Readonly<RateLimitOptions>;
        readonly timeoutMs: number;
        readonly askTimeoutMs: number;
        readonly maxConcurrentDecisions: number;
        readonly decisionCacheTtlMs: number;
      }
    | false;
  readonly cacheCapacity: number;
  readonly defaultServerName: string | undefined;
  readonly preferredChain: string | undefined;
  readonly profile: readonly string[] | undefined;
  readonly logger: Logger;
  readonly clock: Clock;
  readonly on: Readonly<EventListeners>;
  readonly closeTimeoutMs: number;
  readonly notify: ResolvedNotify | false;
  readonly revocationCheck: ResolvedRevocationCheck | false;
  readonly clockJump: { readonly thresholdMs: number; readonly checkIntervalMs: number } | false;
}
