/**
 * Public options (all optional) and their resolution into one frozen,
 * validated config. Resolution happens once, in the CertKeeper constructor;
 * the caller's object is never mutated, and an explicit `false` always wins
 * over a default.
 */
import type { Clock } from './clock.js';
import { systemClock } from './clock.js';
import type { DnsProvider } from './dns/types.js';
import type { PropagationOptions } from './challenges/dns-propagation.js';
import { InvalidOptionError } from './errors.js';
import type { CertKeeperEvents, EventName, Listener } from './events.js';
import type { Issuer, KeyType } from './issuers/types.js';
import { KEY_TYPES } from './issuers/types.js';
import type { Logger, LogLevel } from './logger.js';
import { createDefaultLogger, validateLogger } from './logger.js';
import { parseIdentifier } from './names.js';
import type { ChallengeType } from './challenges/types.js';
import { CHALLENGE_TYPES } from './challenges/types.js';
import type { Storage } from './storage/types.js';
import {
  durationMs,
  email as validEmail,
  externalAccountBinding as validEab,
  optionalBoolean,
  optionalString,
  pemCertificates,
  port,
  positiveInteger,
} from './validate.js';
import { resolveDirectoryUrl } from './acme/directories.js';
import { resolveAcmeIssuerOptions } from './issuers/acme.js';
import { resolveInternalIssuerOptions, type InternalIssuerOptions } from './issuers/internal.js';
import { DEFAULT_ASK_TIMEOUT_MS, DEFAULT_CA, DEFAULT_CACHE_CAPACITY, DEFAULT_CLOSE_TIMEOUT_MS, DEFAULT_CHALLENGE_PREFERENCE, DEFAULT_HTTP01_PORT, DEFAULT_KEY_TYPE, DEFAULT_LOAD_CONCURRENCY, DEFAULT_LOG_LEVEL, DEFAULT_MAX_CONCURRENT_ORDERS, DEFAULT_ON_DEMAND_DECISION_CACHE_CAPACITY, DEFAULT_ON_DEMAND_DECISION_CACHE_TTL_MS, DEFAULT_ON_DEMAND_MAX_CONCURRENT_DECISIONS, DEFAULT_ON_DEMAND_RATE, DEFAULT_ON_DEMAND_TIMEOUT_MS, DEFAULT_RENEWALS_PER_SECOND_WHEN_BUSY, DEFAULT_RENEWAL_CHECK_INTERVAL_MS, DEFAULT_RENEWAL_IDLE_BURST, DEFAULT_RENEWAL_MAX_EVENT_LOOP_UTILIZATION, DEFAULT_RENEWAL_MIN_IDLE_CPUS, DEFAULT_RENEWAL_WINDOW_RATIO, DEFAULT_TLS_ALPN01_PORT } from './defaults.js';
export { DEFAULT_CA, DEFAULT_CLOSE_TIMEOUT_MS, DEFAULT_ON_DEMAND_DECISION_CACHE_CAPACITY, DEFAULT_ON_DEMAND_DECISION_CACHE_TTL_MS, DEFAULT_ON_DEMAND_MAX_CONCURRENT_DECISIONS, DEFAULT_KEY_TYPE, DEFAULT_RENEWAL_WINDOW_RATIO, DEFAULT_MAX_CONCURRENT_ORDERS, DEFAULT_HTTP01_PORT, DEFAULT_TLS_ALPN01_PORT, DEFAULT_CHALLENGE_PREFERENCE, DEFAULT_CACHE_CAPACITY, DEFAULT_ON_DEMAND_TIMEOUT_MS, DEFAULT_ASK_TIMEOUT_MS, DEFAULT_ON_DEMAND_RATE, DEFAULT_LOG_LEVEL, DEFAULT_LOAD_CONCURRENCY, DEFAULT_RENEWAL_MAX_EVENT_LOOP_UTILIZATION, DEFAULT_RENEWAL_MIN_IDLE_CPUS, DEFAULT_RENEWALS_PER_SECOND_WHEN_BUSY, DEFAULT_RENEWAL_CHECK_INTERVAL_MS, DEFAULT_RENEWAL_IDLE_BURST };

/** Stand-ins for what the keeper supplies when it builds an issuer from a spec; only used to validate the spec. */
const NO_LOGGER: Logger = { trace() {}, debug() {}, info() {}, warn() {}, error() {}, fatal() {}, child: () => NO_LOGGER };
const SPEC_STORAGE = { load() {}, store() {}, lock() {}, unlock() {} } as unknown as Storage;
import { resolveNotify, type NotifyOptions, type ResolvedNotify } from './notify/options.js';


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
  readonly logger: Logger;
  readonly clock: Clock;
  readonly on: Readonly<EventListeners>;
  readonly closeTimeoutMs: number;
  readonly notify: ResolvedNotify | false;
}

const KNOWN_OPTIONS = new Set<string>([
  'email', 'agreeToTerms', 'ca', 'caCertificates', 'externalAccountBinding', 'issuers', 'storage', 'keyType',
  'challenges', 'renewalWindowRatio', 'maxConcurrentOrders', 'renewalPacing', 'rateLimit', 'onDemand', 'cacheCapacity',
  'defaultServerName', 'preferredChain', 'logger', 'logLevel', 'clock', 'on', 'closeTimeoutMs', 'notify',
]);

/** Options that were renamed or removed, with a hint. */
const REMOVED_OPTIONS: Record<string, string> = {
  directoryUrl: 'use "ca" (a preset name or a directory URL)',
  agreeTos: 'use "agreeToTerms"',
  eab: 'use "externalAccountBinding"',
};

export function resolveConfig(options: CertKeeperOptions = {}): ResolvedConfig {
  if (typeof options !== 'object' || options === null) throw new InvalidOptionError('options', 'must be an object');
  for (const key of Object.keys(options)) {
    if (REMOVED_OPTIONS[key]) throw new InvalidOptionError(key, `is not an option; ${REMOVED_OPTIONS[key]}`);
    if (!KNOWN_OPTIONS.has(key)) throw new InvalidOptionError(key, 'is not a known option');
  }

  const email = validEmail(options.email, 'email');
  const agreeToTerms = optionalBoolean(options.agreeToTerms, 'agreeToTerms') ?? false;
  const ca = optionalString(options.ca, 'ca') ?? DEFAULT_CA;
  resolveDirectoryUrl(ca, 'ca');
  const caCertificates = pemCertificates(options.caCertificates, 'caCertificates');
  const externalAccountBinding = validEab(options.externalAccountBinding, 'externalAccountBinding');

  let issuers: readonly IssuerSpec[] | undefined;
  if (options.issuers !== undefined) {
    if (!Array.isArray(options.issuers) || options.issuers.length === 0) throw new InvalidOptionError('issuers', 'must be a non-empty array of issuers');
    options.issuers.forEach((issuer, i) => validateIssuer(issuer, `issuers[${i}]`));
    issuers = Object.freeze([...options.issuers]);
  }

  if (options.storage !== undefined) validateStorage(options.storage);

  const keyType = resolveKeyType(options.keyType, 'keyType') ?? DEFAULT_KEY_TYPE;
  const challenges = resolveChallenges(options.challenges, 'challenges');

  const renewalWindowRatio = options.renewalWindowRatio ?? DEFAULT_RENEWAL_WINDOW_RATIO;
  if (typeof renewalWindowRatio !== 'number' || !(renewalWindowRatio > 0 && renewalWindowRatio < 1)) {
    throw new InvalidOptionError('renewalWindowRatio', 'must be a number between 0 and 1 (exclusive)');
  }
  const maxConcurrentOrders = positiveInteger(options.maxConcurrentOrders, 'maxConcurrentOrders') ?? DEFAULT_MAX_CONCURRENT_ORDERS;
  const renewalPacing = resolveRenewalPacing(options.renewalPacing);
  const rateLimit = options.rateLimit === false ? false : options.rateLimit === undefined ? undefined : resolveRateLimit(options.rateLimit, 'rateLimit');
  const onDemand = resolveOnDemand(options.onDemand);
  const cacheCapacity = positiveInteger(options.cacheCapacity, 'cacheCapacity') ?? DEFAULT_CACHE_CAPACITY;
  let defaultServerName: string | undefined;
  if (options.defaultServerName !== undefined) {
    try {
      defaultServerName = parseIdentifier(options.defaultServerName).value;
    } catch (error) {
      throw new InvalidOptionError('defaultServerName', (error as Error).message, { cause: error });
    }
  }
  const preferredChain = optionalString(options.preferredChain, 'preferredChain');
  if (preferredChain === '') throw new InvalidOptionError('preferredChain', 'must be a non-empty issuer common name');

  const logger = options.logger !== undefined ? validateLogger(options.logger) : createDefaultLogger(options.logLevel ?? DEFAULT_LOG_LEVEL);
  const clock = options.clock ?? undefined;
  if (clock !== undefined && (typeof clock.now !== 'function' || typeof clock.setTimer !== 'function')) {
    throw new InvalidOptionError('clock', 'must have now() and setTimer() methods');
  }
  const closeTimeoutMs = durationMs(options.closeTimeoutMs, 'closeTimeoutMs', true) ?? DEFAULT_CLOSE_TIMEOUT_MS;
  const notify = resolveNotify(options.notify);
  const on: EventListeners = {};
  if (options.on !== undefined) {
    if (typeof options.on !== 'object' || options.on === null) throw new InvalidOptionError('on', 'must be an object of event listeners');
    for (const [event, listener] of Object.entries(options.on)) {
      if (typeof listener !== 'function') throw new InvalidOptionError(`on.${event}`, 'must be a function');
      (on as Record<string, unknown>)[event] = listener;
    }
  }

  return Object.freeze({
    email,
    agreeToTerms,
    ca,
    caCertificates,
    externalAccountBinding,
    issuers,
    storage: options.storage,
    keyType,
    challenges,
    renewalWindowRatio,
    maxConcurrentOrders,
    renewalPacing,
    rateLimit,
    onDemand,
    cacheCapacity,
    defaultServerName,
    preferredChain,
    logger,
    clock: clock ?? systemClock,
    on: Object.freeze(on),
    closeTimeoutMs,
    notify,
  });
}

/** Resolves per-call settings against the keeper's config. */
export function resolveChallenges(input: ChallengeOptions | undefined, option: string): ResolvedChallenges {
  if (input !== undefined && (typeof input !== 'object' || input === null)) throw new InvalidOptionError(option, 'must be an object');
  const http01 = resolveHttp01(input?.http01, `${option}.http01`);
  const tlsAlpn01 = resolveTlsAlpn01(input?.tlsAlpn01, `${option}.tlsAlpn01`);
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

export function resolveKeyType(value: unknown, option: string): KeyType | undefined {
  if (value === undefined) return undefined;
  if (!KEY_TYPES.includes(value as KeyType)) throw new InvalidOptionError(option, `must be one of ${KEY_TYPES.join(', ')}`);
  return value as KeyType;
}

export function validateIssuer(issuer: unknown, option: string): asserts issuer is IssuerSpec {
  const candidate = issuer as (Partial<Issuer> & { type?: unknown }) | null;
  if (typeof candidate !== 'object' || candidate === null) throw new InvalidOptionError(option, 'must be an issuer object or spec');
  if (candidate.type === 'acme') {
    const { type: _type, ca, ...rest } = candidate as AcmeIssuerSpec;
    const where = ca !== undefined && /^https?:\/\//i.test(ca) ? { directoryUrl: ca } : { ca: ca as never };
    return validateSpec(() => resolveAcmeIssuerOptions({ ...rest, ...where, storage: SPEC_STORAGE, solvers: {} }), option);
  }
  if (candidate.type === 'internal') {
    const { name, leafLifetimeMs } = candidate as InternalIssuerSpec;
    return validateSpec(() => resolveInternalIssuerOptions({ name, leafLifetimeMs, storage: SPEC_STORAGE, logger: NO_LOGGER } as InternalIssuerOptions), option);
  }
  if (typeof candidate.issue !== 'function' || typeof candidate.key !== 'string' || candidate.key.length === 0) {
    throw new InvalidOptionError(option, "must be { type: 'acme' | 'internal', ... } or an issuer with a string `key` and an issue() method");
  }
}

/** Checked by the issuers' own resolvers, so a spec accepted here is never rejected when its issuer is built. */
function validateSpec(resolve: () => unknown, option: string): void {
  try {
    resolve();
  } catch (error) {
    if (error instanceof InvalidOptionError) throw new InvalidOptionError(`${option}.${error.option}`, error.message.replace(/^Invalid option "[^"]*": /, ''));
    throw error;
  }
}

function resolveHttp01(value: Http01Options | false | undefined, option: string): ResolvedChallenges['http01'] {
  if (value === false) return false;
  if (value !== undefined && (typeof value !== 'object' || value === null)) throw new InvalidOptionError(option, 'must be an object or false');
  return Object.freeze({
    port: port(value?.port, `${option}.port`) ?? DEFAULT_HTTP01_PORT,
    host: optionalString(value?.host, `${option}.host`) ?? '',
    listener: optionalBoolean(value?.listener, `${option}.listener`) ?? true,
  });
}

function resolveTlsAlpn01(value: TlsAlpn01Options | false | undefined, option: string): ResolvedChallenges['tlsAlpn01'] {
  if (value === false) return false;
  if (value !== undefined && (typeof value !== 'object' || value === null)) throw new InvalidOptionError(option, 'must be an object or false');
  return Object.freeze({
    port: port(value?.port, `${option}.port`) ?? DEFAULT_TLS_ALPN01_PORT,
    host: optionalString(value?.host, `${option}.host`) ?? '',
    listener: optionalBoolean(value?.listener, `${option}.listener`) ?? false,
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

function resolveRateLimit(value: RateLimitOptions, option: string): Readonly<RateLimitOptions> {
  if (typeof value !== 'object' || value === null) throw new InvalidOptionError(option, 'must be an object or false');
  return Object.freeze({
    capacity: positiveInteger(value.capacity, `${option}.capacity`) ?? fail(`${option}.capacity`, 'is required'),
    refillAmount: positiveInteger(value.refillAmount, `${option}.refillAmount`) ?? fail(`${option}.refillAmount`, 'is required'),
    refillIntervalMs: durationMs(value.refillIntervalMs, `${option}.refillIntervalMs`) ?? fail(`${option}.refillIntervalMs`, 'is required'),
  });
}

function resolveRenewalPacing(value: RenewalPacingOptions | false | undefined): ResolvedConfig['renewalPacing'] {
  if (value === false) return false;
  if (value !== undefined && (typeof value !== 'object' || value === null)) throw new InvalidOptionError('renewalPacing', 'must be an object or false');
  const maxEventLoopUtilization = value?.maxEventLoopUtilization ?? DEFAULT_RENEWAL_MAX_EVENT_LOOP_UTILIZATION;
  if (typeof maxEventLoopUtilization !== 'number' || !(maxEventLoopUtilization > 0 && maxEventLoopUtilization <= 1)) {
    throw new InvalidOptionError('renewalPacing.maxEventLoopUtilization', 'must be a number greater than 0 and at most 1');
  }
  const minIdleCpus = value?.minIdleCpus ?? DEFAULT_RENEWAL_MIN_IDLE_CPUS;
  if (typeof minIdleCpus !== 'number' || !Number.isFinite(minIdleCpus) || minIdleCpus < 0) {
    throw new InvalidOptionError('renewalPacing.minIdleCpus', 'must be a number >= 0');
  }
  const renewalsPerSecondWhenBusy = value?.renewalsPerSecondWhenBusy ?? DEFAULT_RENEWALS_PER_SECOND_WHEN_BUSY;
  if (typeof renewalsPerSecondWhenBusy !== 'number' || !Number.isFinite(renewalsPerSecondWhenBusy) || renewalsPerSecondWhenBusy <= 0) {
    throw new InvalidOptionError('renewalPacing.renewalsPerSecondWhenBusy', 'must be a positive number');
  }
  return Object.freeze({
    maxEventLoopUtilization,
    minIdleCpus,
    renewalsPerSecondWhenBusy,
    checkIntervalMs: DEFAULT_RENEWAL_CHECK_INTERVAL_MS,
    idleBurst: DEFAULT_RENEWAL_IDLE_BURST,
  });
}

function resolveOnDemand(value: OnDemandOptions | false | undefined): ResolvedConfig['onDemand'] {
  if (value === undefined || value === false) return false;
  if (typeof value !== 'object' || value === null) throw new InvalidOptionError('onDemand', 'must be an object or false');
  if (value.decide !== undefined && typeof value.decide !== 'function') throw new InvalidOptionError('onDemand.decide', 'must be a function');
  let askUrl: string | undefined;
  if (value.askUrl !== undefined) {
    askUrl = optionalString(value.askUrl, 'onDemand.askUrl');
    let parsed: URL;
    try {
      parsed = new URL(askUrl ?? '');
    } catch {
      throw new InvalidOptionError('onDemand.askUrl', 'must be an absolute http(s) URL');
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new InvalidOptionError('onDemand.askUrl', 'must be an http(s) URL');
  }
  if (value.decide === undefined && askUrl === undefined) {
    // Without a decision anyone can make us order certificates for any name (caddy#5008).
    throw new InvalidOptionError('onDemand', 'needs a decide(name) function or an askUrl; refusing to issue for every name a client sends');
  }
  return Object.freeze({
    decide: value.decide,
    askUrl,
    rateLimit: value.rateLimit === undefined ? DEFAULT_ON_DEMAND_RATE : resolveRateLimit(value.rateLimit, 'onDemand.rateLimit'),
    timeoutMs: durationMs(value.timeoutMs, 'onDemand.timeoutMs') ?? DEFAULT_ON_DEMAND_TIMEOUT_MS,
    askTimeoutMs: durationMs(value.askTimeoutMs, 'onDemand.askTimeoutMs') ?? DEFAULT_ASK_TIMEOUT_MS,
    maxConcurrentDecisions: positiveInteger(value.maxConcurrentDecisions, 'onDemand.maxConcurrentDecisions') ?? DEFAULT_ON_DEMAND_MAX_CONCURRENT_DECISIONS,
    decisionCacheTtlMs: value.decisionCacheTtlMs === false ? 0 : (durationMs(value.decisionCacheTtlMs, 'onDemand.decisionCacheTtlMs', true) ?? DEFAULT_ON_DEMAND_DECISION_CACHE_TTL_MS),
  });
}

function validateStorage(storage: unknown): void {
  const methods = ['store', 'load', 'delete', 'exists', 'list', 'stat', 'lock', 'unlock'];
  const candidate = storage as Record<string, unknown> | null;
  if (typeof candidate !== 'object' || candidate === null) throw new InvalidOptionError('storage', 'must be a Storage object');
  for (const method of methods) {
    if (typeof candidate[method] !== 'function') throw new InvalidOptionError('storage', `must implement ${method}()`);
  }
}

function fail(option: string, message: string): never {
  throw new InvalidOptionError(option, message);
}

export type { CertKeeperEvents };
