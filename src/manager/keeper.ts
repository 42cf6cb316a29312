/**
 * CertKeeper: keeps certificates alive and serves them. This class only
 * orchestrates; the logic lives in small modules (storage/certificates,
 * maintenance/*, tls/context-cache, issuers/*, solvers/*).
 */
import { setMaxListeners } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type * as tls from 'node:tls';
import { createKeyAndCsr } from '../acme/csr.js';
import { ariRetryAt, shouldQueryAri } from '../acme/ari.js';
import type { TimerHandle } from '../clock.js';
import type { CertKeeperOptions, ManageSettings, ResolvedConfig } from '../config.js';
import { DEFAULT_ON_DEMAND_DECISION_CACHE_CAPACITY, resolveChallenges, resolveConfig, resolveKeyType } from '../config.js';
import {
  AbortedError,
  AcmeProblemError,
  BackoffError,
  CertificateInvalidError,
  CertKeeperError,
  ClosedError,
  ERROR_CODES,
  InvalidOptionError,
  LockLostError,
  ManageError,
  OnDemandBusyError,
  StorageError,
  StorageNotFoundError,
  type NameFailure,
} from '../errors.js';
import { TypedEmitter, type EventName, type Listener } from '../events.js';
import { AcmeIssuer } from '../issuers/acme.js';
import type { Issuer, KeyType, RenewalInfo } from '../issuers/types.js';
import type { Logger } from '../logger.js';
import { recordFailure, type BackoffState } from '../renewal/backoff.js';
import { blockedBy, clearFailureState, hasFailureState, listFailureStates, loadFailureState, saveFailureState, type FailureState } from '../renewal/failure-state.js';
import { Semaphore, Singleflight } from '../limits/concurrency.js';
import { DueQueue } from '../renewal/due-queue.js';
import { CpuOffload } from '../cpu/offload.js';
import { EventLoopTurns, RenewalPacer } from '../renewal/pacer.js';
import { isEmergency, planRenewal, renewalDueTime, seededRandom, storedRenewalDueAt, type RenewalPlan, type RenewalSource } from '../renewal/renewal-policy.js';
import { createRateLimiter, RATE_LIMIT_PRESETS, UnlimitedRateLimiter, type RateLimiter } from '../limits/token-bucket.js';
import { parseIdentifier, wildcardFor, type Identifier } from '../names.js';
import { OnDemandDecider, type Decision } from './on-demand.js';
import {
  certificateMetaFrom,
  listCertificateNames,
  loadCertificateMeta,
  loadCertificateSet,
  storeVerifiedCertificateSet,
  updateCertificateMeta,
  type CertificateMeta,
  type CertificateSet,
} from '../storage/certificates.js';
import { checkCertificateWritable, checkStorageWritable } from '../storage/check.js';
import { FileStorage } from '../storage/file.js';
import { certificateKeys, certificateLockName, safeKeyComponent } from '../storage/layout.js';
import { hasLockLeaseCheck, hasTryLock, type Storage } from '../storage/types.js';
import { buildMaterial, type CertificateMaterial } from '../tls/certificate-material.js';
import { ContextCache } from '../tls/context-cache.js';
import { KeeperMetrics, type MetricFamily, type MetricsSnapshot } from '../metrics.js';
import { ExpiryWatch } from '../notify/expiry-watch.js';
import { buildStatusReport, type StatusReport } from '../http/status-report.js';
import { createStatusHandler, type StatusHandler, type StatusHandlerOptions } from '../http/status-page.js';
import { Notifier } from '../notify/notifier.js';
import { DEFAULT_NOTIFY_EXPIRING_RATIO } from '../notify/options.js';
import { buildTlsOptions, attachServer } from '../tls/tls-options.js';
import { IssuerFactory } from '../issuers/factory.js';
import { ClientCaBundles, type TlsOptionsWithClientCa } from '../tls/client-ca.js';
import { UnmanagedCertificates, type LoadCertificateFilesOptions, type LoadCertificatePemOptions, type UnmanagedHandle } from '../tls/file-reload.js';
import { mayBeChallengeRequest, redirectToHttps } from '../http/challenge.js';
import { DEFAULT_EAGER_LOAD_LIMIT, DEFAULT_LOAD_CONCURRENCY, DEFAULT_WARM_UP_CONCURRENCY } from '../defaults.js';
export { DEFAULT_EAGER_LOAD_LIMIT, DEFAULT_LOAD_CONCURRENCY, DEFAULT_WARM_UP_CONCURRENCY };

/** How long a passed storage write check is trusted before the next order checks again. */
export const STORAGE_CHECK_INTERVAL_MS = 60_000;
/** ARI problem types after which retrying the same order is pointless. */
const FINAL_PROBLEMS = new Set(['rejectedIdentifier', 'unsupportedIdentifier', 'caa', 'externalAccountRequired']);
const ARI_KEY_PREFIX = 'ari:';
/** A freshly obtained certificate is not renewed again sooner than this (or a tenth of its lifetime, if shorter). */
export const MIN_RENEWAL_INTERVAL_MS = 3_600_000;

/** A manageSync/manageAsync entry: one name, or a group of names sharing one certificate. */
export type ManageEntry = string | readonly string[];

export interface CertificateStatus {
  names: string[];
  /** Issuer key of the certificate being served. */
  issuer: string | undefined;
  notBefore: Date | undefined;
  notAfter: Date | undefined;
  serialNumber: string | undefined;
  /** When the next renewal (or retry) is scheduled. */
  nextRenewalAt: Date | undefined;
  /** `valid`: a certificate is served; `obtaining`: none yet; `failed`: none, and the last attempt failed. */
  state: 'valid' | 'obtaining' | 'failed';
  failures: number;
  lastError: { code: string | undefined; message: string; at: Date } | undefined;
  /** `managed`: named in manageSync/manageAsync; `on-demand`: registered during a handshake. */
  source: 'managed' | 'on-demand';
  /** When renewal is planned, and what decided it (lifetime rule, ARI window, or the 1/20 emergency point). */
  renewalDueAt: Date | undefined;
  renewalReason: RenewalSource | undefined;
  /** The CA's suggested renewal window (RFC 9773), when it gave one. */
  ariWindow: { start: Date; end: Date } | undefined;
}

export interface RenewOptions {
  /** Renew even if not due, and ignore the failure backoff (an operator's "retry now"). */
  force?: boolean;
  signal?: AbortSignal;
}

interface ResolvedSettings {
  readonly issuers: readonly Issuer[];
  readonly keyType: KeyType;
}

interface ManagedRecord {
  readonly certName: string;
  readonly names: string[];
  readonly identifiers: Identifier[];
  settings: ResolvedSettings;
  /** What is served (or stored) now. */
  issuerKey: string | undefined;
  notBefore: number | undefined;
  notAfter: number | undefined;
  serialNumber: string | undefined;
  certPem: string | undefined;
  materialId: string | undefined;
  ariSelectedTime: number | undefined;
  ariWindow: { windowStart: number; windowEnd: number } | undefined;
  backoff: BackoffState | undefined;
  /** An ACME problem that retrying will not fix; no automatic retries until renew(). */
  finalError: boolean;
  /** When this process last obtained the served certificate. */
  obtainedAt: number | undefined;
  /** Registered by an on-demand handshake rather than by manageSync/manageAsync. */
  onDemand?: boolean;
}

type ObtainOutcome = 'obtained' | 'adopted';

export class CertKeeper {
  readonly #config: ResolvedConfig;
  readonly #log: Logger;
  readonly #events: TypedEmitter;
  readonly #storage: Storage;
  readonly #ownsStorage: boolean;
  readonly #cache: ContextCache;
  readonly #unmanaged: UnmanagedCertificates;
  readonly #clientCas: ClientCaBundles;
  readonly #queue: DueQueue<string>;
  readonly #orders: Semaphore;
  /** Renewals of still-valid certificates are rate-limited while the server is busy; undefined when `renewalPacing: false`. */
  readonly #pacer: RenewalPacer | undefined;
  /** CPU-heavy steps of obtaining, one per event-loop iteration, so handshakes are answered between them. */
  readonly #turns = new EventLoopTurns();
  /** A worker thread for renewals' keys and CSRs and for every internal-CA signature. */
  readonly #cpu: CpuOffload;
  /** Records whose sidecars are read in the background after a large manageSync; few at once, so handshakes keep the CPU. */
  #warmUpQueue: ManagedRecord[] = [];
  #warmUpHead = 0;
  #warmUpWorkers = 0;
  readonly #inflight = new Singleflight<string, ObtainOutcome>();
  readonly #records = new Map<string, ManagedRecord>();
  /** Every managed name (and wildcard) -> its certificate's name. */
  readonly #nameIndex = new Map<string, string>();
  readonly #limiters = new Map<string, RateLimiter>();
  readonly #onDemandLimiter: RateLimiter | undefined;
  readonly #onDemandDecider: OnDemandDecider | undefined;
  readonly #issuers: IssuerFactory;
  readonly #defaultSettings: ResolvedSettings;
  readonly #abort = new AbortController();
  readonly #work = new Set<Promise<unknown>>();
  readonly #metrics = new KeeperMetrics();
  readonly #expiryWatch: ExpiryWatch;
  readonly #notifier: Notifier | undefined;
  #httpHandlerMounted = false;
  #storageCheckedAt: number | undefined;
  #closing: Promise<void> | undefined;
  /**
   * Errors already reported as failures of a name (or that are not failures: a backoff still running), per name:
   * one error object can fail several names at once (a shared directory read refused by the CA).
   */
  readonly #accounted = new WeakMap<object, WeakSet<ManagedRecord>>();
  /** Names with a persisted failure state, as last listed (read by the background warm-up of large manageSync calls). */
  #failureListing: ReadonlySet<string> | undefined;

  constructor(options: CertKeeperOptions = {}) {
    // Every operation in flight listens on this long-lived signal; more than 10 at once is normal, not a leak.
    setMaxListeners(0, this.#abort.signal);
    this.#config = resolveConfig(options);
    const config = this.#config;
    this.#log = config.logger.child({ component: 'manager' });
    this.#events = new TypedEmitter((event, error) => this.#log.error({ err: error, event }, 'event listener threw'));
    for (const [event, listener] of Object.entries(config.on)) this.#events.on(event as EventName, listener as Listener<EventName>);
    this.#metrics.observe(this.#events);

    this.#ownsStorage = config.storage === undefined;
    // Lock calls are timed for metrics(); the proxy keeps the storage's identity and capabilities.
    this.#storage = this.#metrics.instrumentStorage(config.storage ?? new FileStorage({ logger: config.logger }));
    this.#cache = new ContextCache({
      capacity: config.cacheCapacity,
      loader: (name, { signal, abandoned }) => this.#loadForHandshake(name, signal, abandoned),
      loadTimeoutMs: config.onDemand ? config.onDemand.timeoutMs : 10_000,
      onEvict: ({ names }) => this.#events.emit('cert_evicted', { names }),
      logger: config.logger.child({ component: 'tls' }),
      clock: config.clock,
    });
    const reloadDeps = { cache: this.#cache, events: this.#events, logger: config.logger, clock: config.clock };
    this.#unmanaged = new UnmanagedCertificates({ ...reloadDeps, defaultServerName: config.defaultServerName });
    this.#clientCas = new ClientCaBundles(reloadDeps);
    this.#queue = new DueQueue<string>({
      clock: config.clock,
      onDue: (key) => this.#onDue(key),
      onError: (error, key) => this.#log.error({ err: error, key }, 'scheduled work failed to start'),
    });
    this.#orders = new Semaphore(config.maxConcurrentOrders);
    this.#pacer = config.renewalPacing
      ? new RenewalPacer({
          maxUtilization: config.renewalPacing.maxEventLoopUtilization,
          minIdleCpus: config.renewalPacing.minIdleCpus,
          busyRatePerSecond: config.renewalPacing.renewalsPerSecondWhenBusy,
          checkIntervalMs: config.renewalPacing.checkIntervalMs,
          idleBurst: config.renewalPacing.idleBurst,
        })
      : undefined;
    this.#onDemandLimiter = config.onDemand ? createRateLimiter(config.onDemand.rateLimit, config.clock, 'onDemand.rateLimit') : undefined;
    this.#onDemandDecider = config.onDemand
      ? new OnDemandDecider({
          decide: config.onDemand.decide,
          askUrl: config.onDemand.askUrl,
          askTimeoutMs: config.onDemand.askTimeoutMs,
          maxConcurrent: config.onDemand.maxConcurrentDecisions,
          cacheTtlMs: config.onDemand.decisionCacheTtlMs,
          cacheCapacity: DEFAULT_ON_DEMAND_DECISION_CACHE_CAPACITY,
          clock: config.clock,
        })
      : undefined;

    this.#cpu = new CpuOffload({ logger: config.logger.child({ component: 'cpu' }) });
    this.#issuers = new IssuerFactory(config, this.#storage, this.#cpu);
    this.#expiryWatch = new ExpiryWatch({
      clock: config.clock,
      ratio: config.notify ? config.notify.expiringRatio : DEFAULT_NOTIFY_EXPIRING_RATIO,
      list: () => this.list(),
      emit: (event) => this.#events.emit('cert_expiring', event),
    });
    // Served certificates change on these: the watch re-plans its one timer.
    for (const event of ['cert_obtained', 'cert_loaded'] as const) this.#events.on(event, () => this.#expiryWatch.check());
    this.#notifier = config.notify
      ? new Notifier({
          config: config.notify,
          on: (event, listener) => this.#events.on(event, listener),
          emit: (failure) => this.#events.emit('notification_failed', failure),
          storage: this.#storage,
          clock: config.clock,
          logger: config.logger.child({ component: 'notify' }),
        })
      : undefined;
    this.#defaultSettings = {
      issuers: this.#issuers.build(config.issuers ?? [{ type: 'acme' }], config.challenges, 'issuers'),
      keyType: config.keyType,
    };
  }

  // ---------------------------------------------------------------- public API

  /** Subscribes to a typed event; returns a function that unsubscribes. */
  on<E extends EventName>(event: E, listener: Listener<E>): () => void {
    return this.#events.on(event, listener);
  }

  /**
   * Serves every entry: a valid certificate from storage when there is one
   * (even if its renewal is due and then fails), otherwise a newly obtained
   * one. Resolves when all are served; otherwise rejects with a ManageError
   * listing each failed entry, after serving all the others.
   */
  async manageSync(entries: readonly ManageEntry[], settings?: ManageSettings): Promise<void> {
    this.#assertOpen();
    const records = this.#register(entries, settings);
    // Many names: one listing per issuer says which are stored, and their sidecars are read in the
    // background, so start-up is proportional to what is served, not to what is stored.
    const listed = records.length > DEFAULT_EAGER_LOAD_LIMIT ? await this.#listStored(records) : undefined;
    const failing = await this.#listFailureStates();
    const failures: NameFailure[] = [];
    const loads = new Semaphore(DEFAULT_LOAD_CONCURRENCY);
    await Promise.all(
      records.map(async (record) => {
        try {
          if (listed ? this.#adoptListed(record, listed) : await loads.run(() => this.#loadStored(record, { eager: true }))) {
            if (listed) {
              this.#queueWarmUp(record);
              return;
            }
            await this.#restoreFailureState(record, failing);
            this.#scheduleNext(record);
            if (this.#isDue(record)) this.#track(this.#renewInBackground(record));
            return;
          }
          // A backoff persisted before a restart, or by a peer, and a final refusal: do not ask the CA earlier.
          const blocked = await this.#restoreFailureState(record, failing);
          if (blocked) throw blocked;
          await this.#obtain(record, { renewal: false, force: false, signal: this.#abort.signal });
        } catch (error) {
          await this.#noteFailure(record, error, false, this.#abort.signal);
          failures.push({ names: [...record.names], error: error as Error });
          this.#scheduleNext(record);
        }
      }),
    );
    if (failures.length > 0) throw new ManageError(failures);
  }

  /** Like manageSync, but returns at once; obtains in the background with retries and reports through events. */
  manageAsync(entries: readonly ManageEntry[], settings?: ManageSettings): void {
    this.#assertOpen();
    const records = this.#register(entries, settings);
    const eager = records.length <= DEFAULT_EAGER_LOAD_LIMIT;
    const loads = new Semaphore(DEFAULT_LOAD_CONCURRENCY);
    // One listing for the whole call, not one read per name.
    const failing = this.#listFailureStates();
    for (const record of records) {
      this.#track(
        (async () => {
          try {
            await loads.run(() => this.#loadStored(record, { eager }));
            await this.#restoreFailureState(record, await failing);
          } catch (error) {
            // A storage that cannot be read is a failure of the name like any other: backed off, reported.
            await this.#noteFailure(record, error, record.serialNumber !== undefined, this.#abort.signal);
            this.#scheduleNext(record);
            return;
          }
          if (record.finalError || !this.#isDue(record)) {
            this.#scheduleNext(record);
            return;
          }
          await this.#renewInBackground(record);
        })().catch((error: unknown) => this.#log.error({ err: error, names: record.names }, 'background manage failed')),
      );
    }
  }

  /**
   * Obtains a certificate for the names now and stores it, without serving
   * or scheduling it (the foundation entry point; manageSync uses the same path).
   */
  async obtain(names: ManageEntry, settings?: ManageSettings & { signal?: AbortSignal }): Promise<CertificateSet> {
    this.#assertOpen();
    const [record] = this.#prepare([names], settings);
    if (!record) throw new InvalidOptionError('names', 'must name at least one identifier');
    const signal = settings?.signal ? AbortSignal.any([settings.signal, this.#abort.signal]) : this.#abort.signal;
    return this.#track(this.#withCertificateLock(record, signal, async (lockName) => (await this.#issueAndStore(record, signal, lockName)).set));
  }

  /** Server options for tls.createServer, https.createServer and http2.createSecureServer, merged with yours. */
  tlsOptions(userOptions: TlsOptionsWithClientCa = {}): tls.TlsOptions {
    // clientCA: a watched client-CA bundle, handed to the cache as its `ca` (see tls/client-ca.ts).
    return buildTlsOptions(this.#cache, this.#clientCas.apply(userOptions), {
      alpnChallenges: this.#issuers.tlsAlpn01.store,
      logger: this.#config.logger.child({ component: 'tls' }),
    });
  }

  /**
   * Serves a certificate issued elsewhere (certbot, a Kubernetes secret...)
   * from files, reloaded when they change (unless `watch: false`); never
   * renewed here. Rejects with ERR_CERTIFICATE_FILE or ERR_CERTIFICATE_INVALID.
   */
  loadCertificateFiles(options: LoadCertificateFilesOptions): Promise<UnmanagedHandle> {
    this.#assertOpen();
    return this.#track(this.#unmanaged.loadFiles(options));
  }

  /** Serves a certificate given in memory (PEM); never renewed here. */
  loadCertificatePem(options: LoadCertificatePemOptions): UnmanagedHandle {
    this.#assertOpen();
    return this.#unmanaged.loadPem(options);
  }

  /**
   * Keeps a server's own context (used by clients that send no SNI) in step
   * with reloaded default certificates and client-CA bundles. Pass the same
   * options given to tlsOptions(). Returns a function that detaches.
   */
  attachServer(server: tls.Server, userOptions: TlsOptionsWithClientCa = {}): () => void {
    const { clientCA: _clientCA, ...rest } = userOptions;
    return attachServer(server, this.#cache, rest);
  }

  /**
   * A node:http listener answering ACME HTTP-01 requests; everything else goes
   * to `next`, or without one is redirected to HTTPS (308). Mounting it stops
   * certkeeper from opening its own HTTP-01 listener.
   */
  httpChallengeHandler(next?: (req: IncomingMessage, res: ServerResponse) => void): (req: IncomingMessage, res: ServerResponse) => void {
    const solver = this.#issuers.http01;
    if (!solver) throw new InvalidOptionError('challenges.http01', 'HTTP-01 is disabled, so there is no challenge handler');
    this.#httpHandlerMounted = true;
    solver.disableListener();
    return (req, res) => {
      // Ordinary requests skip the asynchronous responder: no promise, no lookup.
      if (!mayBeChallengeRequest(req.method, req.url)) {
        if (next) next(req, res);
        else redirectToHttps(req, res);
        return;
      }
      solver.responder.respond(req, res).then(
        (handled) => {
          if (handled) return;
          if (next) next(req, res);
          else redirectToHttps(req, res);
        },
        (error: unknown) => {
          this.#log.error({ err: error }, 'HTTP-01 responder failed');
          if (!res.headersSent) res.writeHead(500).end();
        },
      );
    };
  }

  /** The framework-neutral responder (for the Express/Fastify/Koa adapters). Resolves true when it answered. */
  get httpChallengeResponder(): { respond(req: IncomingMessage, res: ServerResponse): Promise<boolean> } {
    const solver = this.#issuers.http01;
    if (!solver) throw new InvalidOptionError('challenges.http01', 'HTTP-01 is disabled, so there is no challenge responder');
    if (!this.#httpHandlerMounted) {
      this.#httpHandlerMounted = true;
      solver.disableListener();
    }
    return solver.responder;
  }

  /** Stops managing and serving these names (stored certificates are kept). */
  unmanage(names: readonly string[]): void {
    for (const input of names) {
      const name = parseIdentifier(input).value;
      const certName = this.#nameIndex.get(name);
      if (!certName) continue;
      const record = this.#records.get(certName);
      this.#queue.unschedule(certName);
      this.#queue.unschedule(ARI_KEY_PREFIX + certName);
      this.#records.delete(certName);
      for (const n of record?.names ?? [name]) this.#nameIndex.delete(n);
      this.#cache.remove(record?.names ?? [name]);
    }
  }

  /** Renews now if due (or always, with force), bypassing the failure backoff when forced. */
  async renew(name: string, options: RenewOptions = {}): Promise<CertificateStatus> {
    this.#assertOpen();
    const record = this.#recordFor(name);
    if (options.force !== true && !this.#isDue(record)) return this.#statusOf(record);
    if (options.force === true) record.finalError = false;
    const signal = options.signal ? AbortSignal.any([options.signal, this.#abort.signal]) : this.#abort.signal;
    await this.#track(this.#obtain(record, { renewal: record.serialNumber !== undefined, force: options.force === true, signal }));
    return this.#statusOf(record);
  }

  status(name: string): CertificateStatus {
    return this.#statusOf(this.#recordFor(name));
  }

  /** Status of every managed certificate. */
  list(): CertificateStatus[] {
    return [...this.#records.values()].map((r) => this.#statusOf(r));
  }

  /** The storage in use (for tools such as the CLI). */
  get storage(): Storage {
    return this.#storage;
  }

  /** Prometheus text exposition of this keeper's certificates and counters (serve it with PROMETHEUS_CONTENT_TYPE). */
  metrics(): string {
    return this.#metrics.render(this.#metricsSnapshot());
  }

  /** The same metrics as families (name, type, help, labelled samples), for certkeeper/prometheus and certkeeper/opentelemetry. */
  metricFamilies(): MetricFamily[] {
    return this.#metrics.families(this.#metricsSnapshot());
  }

  #metricsSnapshot(): MetricsSnapshot {
    return { certificates: this.list(), cache: this.#cache.stats(), now: this.#config.clock.now() };
  }

  /** Every certificate served (managed, on-demand, loaded from files or memory): what the status page and `list --json` show. */
  statusReport(): StatusReport {
    return buildStatusReport(this.list(), this.#unmanaged.list(), this.#config.clock.now());
  }

  /**
   * A node:http listener serving statusReport() as JSON or as an HTML page.
   * Nothing is exposed unless you mount it; requires `authorize(req)` or an explicit `public: true`.
   */
  statusHandler(options: StatusHandlerOptions): StatusHandler {
    return createStatusHandler(() => this.statusReport(), options, (error) => this.#log.error({ err: error }, 'status page failed'));
  }

  /** The context cache's counters (hits, misses, loads, evictions). */
  cacheStats(): ReturnType<ContextCache['stats']> {
    return this.#cache.stats();
  }

  /**
   * Peak and current number of orders in flight; renewals admitted by the pacer (and how many of them while the
   * server was busy); tasks run by the worker thread that makes keys, CSRs and internal-CA signatures of renewals.
   */
  orderStats(): {
    inFlight: number;
    peakInFlight: number;
    waiting: number;
    pacedRenewals: { admitted: number; admittedWhileBusy: number; waiting: number } | undefined;
    workerTasks: number;
  } {
    return {
      inFlight: this.#orders.inFlight,
      peakInFlight: this.#orders.peakInFlight,
      waiting: this.#orders.waiting,
      pacedRenewals: this.#pacer?.stats,
      workerTasks: this.#cpu.stats.tasks,
    };
  }

  /**
   * Stops timers, waits for work in flight (at most `closeTimeoutMs`, then logs a warn naming what it
   * abandoned), closes listeners and releases this process's locks. Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= this.#doClose();
    return this.#closing;
  }

  // ------------------------------------------------------------ registration

  #prepare(entries: readonly ManageEntry[], settings: ManageSettings | undefined): ManagedRecord[] {
    if (!Array.isArray(entries)) throw new InvalidOptionError('names', 'must be an array of names or of name groups');
    const resolved = settings === undefined ? this.#defaultSettings : this.#resolveSettings(settings);
    const records: ManagedRecord[] = [];
    for (const entry of entries) {
      const group = typeof entry === 'string' ? [entry] : entry;
      if (!Array.isArray(group) || group.length === 0) throw new InvalidOptionError('names', 'each entry must be a name or a non-empty array of names');
      const identifiers: Identifier[] = [];
      for (const input of group) {
        const id = parseIdentifier(input);
        if (!identifiers.some((i) => i.value === id.value)) identifiers.push(id);
      }
      const names = identifiers.map((i) => i.value);
      records.push({
        certName: names[0] as string,
        names,
        identifiers,
        settings: resolved,
        issuerKey: undefined,
        notBefore: undefined,
        notAfter: undefined,
        serialNumber: undefined,
        certPem: undefined,
        materialId: undefined,
        ariSelectedTime: undefined,
        ariWindow: undefined,
        backoff: undefined,
        finalError: false,
        obtainedAt: undefined,
      });
    }
    return records;
  }

  #register(entries: readonly ManageEntry[], settings: ManageSettings | undefined): ManagedRecord[] {
    const prepared = this.#prepare(entries, settings);
    const records: ManagedRecord[] = [];
    for (const record of prepared) {
      const existing = this.#records.get(record.certName);
      if (existing) {
        existing.settings = record.settings;
        records.push(existing);
        continue;
      }
      this.#records.set(record.certName, record);
      for (const name of record.names) this.#nameIndex.set(name, record.certName);
      records.push(record);
    }
    return records;
  }

  #resolveSettings(settings: ManageSettings): ResolvedSettings {
    if (typeof settings !== 'object' || settings === null) throw new InvalidOptionError('settings', 'must be an object');
    const challenges = settings.challenges === undefined ? this.#config.challenges : resolveChallenges(settings.challenges, 'settings.challenges');
    let issuers: readonly Issuer[];
    if (settings.issuers !== undefined) {
      if (!Array.isArray(settings.issuers) || settings.issuers.length === 0) throw new InvalidOptionError('settings.issuers', 'must be a non-empty array');
      issuers = this.#issuers.build(settings.issuers, challenges, 'settings.issuers');
    } else if (settings.challenges !== undefined) {
      issuers = this.#issuers.build(this.#config.issuers ?? [{ type: 'acme' }], challenges, 'settings.issuers');
    } else {
      issuers = this.#defaultSettings.issuers;
    }
    return { issuers, keyType: resolveKeyType(settings.keyType, 'settings.keyType') ?? this.#config.keyType };
  }

  // ----------------------------------------------------------------- loading

  /**
   * Reads the stored certificate of a record (first issuer that has one).
   * Eager: the full set is verified and its context built. Otherwise only the
   * sidecar is read, and the set is loaded on its first handshake.
   * Returns false when nothing usable is stored (missing, corrupt, expired).
   */
  async #loadStored(record: ManagedRecord, { eager }: { eager: boolean }): Promise<boolean> {
    for (const issuer of record.settings.issuers) {
      if (eager) {
        const set = await this.#readSet(issuer.key, record.certName);
        if (set && this.#usable(set.meta, record)) {
          this.#adopt(record, set, 'storage');
          return true;
        }
        if (set) this.#adoptBackoff(record, set.meta);
      } else {
        const meta = await this.#readMeta(issuer.key, record.certName);
        if (meta && this.#usable(meta, record)) {
          this.#adoptMeta(record, meta);
          return true;
        }
      }
    }
    return false;
  }

  /** Stored certificate folders of the records' issuers: folder name -> issuer key (earlier issuers win). */
  async #listStored(records: readonly ManagedRecord[]): Promise<Map<string, string>> {
    const issuerKeys = [...new Set(records.flatMap((r) => r.settings.issuers.map((i) => i.key)))];
    const stored = new Map<string, string>();
    for (const issuerKey of issuerKeys) {
      for (const ref of await listCertificateNames(this.#storage, issuerKey)) {
        if (!stored.has(ref.name)) stored.set(ref.name, issuerKey);
      }
    }
    return stored;
  }

  /** Marks a listed record as stored: it is served, loaded on its first handshake. */
  #adoptListed(record: ManagedRecord, listed: ReadonlyMap<string, string>): boolean {
    const issuerKey = listed.get(safeKeyComponent(record.certName));
    if (issuerKey === undefined) return false;
    record.issuerKey ??= issuerKey;
    return true;
  }

  /** Queues a listed record for a background sidecar read; a few workers drain the queue (no promise per name). */
  #queueWarmUp(record: ManagedRecord): void {
    this.#warmUpQueue.push(record);
    while (this.#warmUpWorkers < Math.min(DEFAULT_WARM_UP_CONCURRENCY, this.#warmUpQueue.length - this.#warmUpHead)) {
      this.#warmUpWorkers++;
      this.#track(this.#drainWarmUps());
    }
  }

  async #drainWarmUps(): Promise<void> {
    try {
      while (!this.#closing && this.#warmUpHead < this.#warmUpQueue.length) {
        const record = this.#warmUpQueue[this.#warmUpHead++] as ManagedRecord;
        await this.#warmUp(record);
      }
    } finally {
      this.#warmUpWorkers--;
      if (this.#warmUpHead >= this.#warmUpQueue.length) {
        this.#warmUpQueue = [];
        this.#warmUpHead = 0;
      }
    }
  }

  /** Reads a listed record's sidecar to schedule its renewal; obtains again when it is unusable. */
  async #warmUp(record: ManagedRecord): Promise<void> {
    if (record.notAfter !== undefined || this.#records.get(record.certName) !== record) return;
    try {
      const meta = record.issuerKey !== undefined ? await this.#readMeta(record.issuerKey, record.certName) : undefined;
      const usable = meta !== undefined && this.#usable(meta, record);
      if (usable && record.notAfter === undefined) this.#adoptMeta(record, meta);
      await this.#restoreFailureState(record, this.#failureListing);
      if (usable) {
        this.#scheduleNext(record);
        if (this.#isDue(record)) this.#track(this.#renewInBackground(record));
        return;
      }
      if (this.#isDue(record)) this.#track(this.#renewInBackground(record));
      else this.#scheduleNext(record);
    } catch (error) {
      if (this.#closing) return;
      await this.#noteFailure(record, error, true, this.#abort.signal);
      this.#scheduleNext(record);
    }
  }

  async #readSet(issuerKey: string, certName: string): Promise<CertificateSet | undefined> {
    try {
      return await loadCertificateSet(this.#storage, issuerKey, certName);
    } catch (error) {
      if (error instanceof StorageNotFoundError) return undefined;
      if (error instanceof CertificateInvalidError) {
        // A truncated or mismatched set: obtain this name again, keep everything else.
        this.#log.warn({ err: error, name: certName, issuer: issuerKey }, 'stored certificate is unusable; it will be obtained again');
        return undefined;
      }
      throw error;
    }
  }

  /** The sidecar, with its validity read from the stored certificate (a sidecar's dates are never trusted). */
  async #readMeta(issuerKey: string, certName: string): Promise<CertificateMeta | undefined> {
    try {
      return await loadCertificateMeta(this.#storage, issuerKey, certName);
    } catch (error) {
      if (error instanceof StorageNotFoundError) return undefined;
      if (error instanceof CertificateInvalidError) {
        this.#log.warn({ err: error, name: certName, issuer: issuerKey }, 'stored certificate is unusable; it will be obtained again');
        return undefined;
      }
      throw error;
    }
  }

  #usable(meta: CertificateMeta, record: ManagedRecord): boolean {
    const notAfter = Date.parse(meta.notAfter);
    if (!(notAfter > this.#config.clock.now())) return false;
    return record.names.every((name) => meta.names.includes(name));
  }

  #adoptMeta(record: ManagedRecord, meta: CertificateMeta): void {
    record.issuerKey = meta.issuerKey;
    record.notBefore = Date.parse(meta.notBefore);
    record.notAfter = Date.parse(meta.notAfter);
    record.serialNumber = meta.serialNumber;
    this.#adoptBackoff(record, meta);
    const ari = meta.renewal?.ari;
    if (ari) {
      record.ariWindow = { windowStart: Date.parse(ari.windowStart), windowEnd: Date.parse(ari.windowEnd) };
      record.ariSelectedTime = Date.parse(ari.selectedTime);
    }
  }

  #adoptBackoff(record: ManagedRecord, meta: CertificateMeta): void {
    const renewal = meta.renewal;
    if (renewal && renewal.failures > 0 && renewal.nextAttemptAt) {
      record.backoff = {
        failures: renewal.failures,
        nextAttemptAt: Date.parse(renewal.nextAttemptAt),
        ...(renewal.lastError ? { lastError: { code: renewal.lastError.code, message: renewal.lastError.message, at: Date.parse(renewal.lastError.at) } } : {}),
      };
    } else {
      record.backoff = undefined;
    }
  }

  /** Serves a set: builds its context and swaps it in for the record's names. */
  #adopt(record: ManagedRecord, set: CertificateSet, source: 'storage' | 'obtained', built?: CertificateMaterial): CertificateMaterial {
    // Expiry was checked by #usable; a notBefore seconds ahead of our clock (CA clock skew) must not refuse a fresh certificate.
    const material = built ?? buildMaterial(set.certPem, set.keyPem, { managed: true, checkValidity: false });
    const previous = record.materialId;
    this.#adoptMeta(record, set.meta);
    record.certPem = set.certPem;
    record.materialId = material.id;
    this.#cache.add(material, previous !== undefined ? { replaces: previous } : {});
    if (this.#config.defaultServerName !== undefined && record.names.includes(this.#config.defaultServerName)) {
      this.#cache.setDefault(material);
    }
    if (source === 'storage') {
      this.#events.emit('cert_loaded', { names: [...record.names], issuer: record.issuerKey, notAfter: material.notAfter, source: 'storage' });
    }
    this.#refreshAriSoon(record);
    return material;
  }

  /** The cache's loader: names that are managed but not cached, then on-demand names. No I/O before a name is known to be ours. */
  async #loadForHandshake(name: string, signal: AbortSignal, abandoned: AbortSignal): Promise<CertificateMaterial | undefined> {
    const certName = this.#nameIndex.get(name) ?? (wildcardFor(name) !== undefined ? this.#nameIndex.get(wildcardFor(name) as string) : undefined);
    const record = certName !== undefined ? this.#records.get(certName) : undefined;
    if (record) {
      if (record.issuerKey !== undefined) {
        const set = await this.#readSet(record.issuerKey, record.certName);
        if (set && this.#usable(set.meta, record)) return this.#adopt(record, set, 'storage');
      }
      if (this.#inflight.has(record.certName)) {
        await this.#inflight.run(record.certName, () => Promise.resolve('adopted' as const), signal);
        return record.materialId !== undefined ? this.#cache.peek(name) : undefined;
      }
      // Stored set vanished or broke: obtain again in the background, unless a failure backoff still runs
      // (handshakes must not turn a broken storage or CA into a retry storm).
      // A final refusal waits for an operator's forced renew, whatever the handshakes.
      const backoff = record.backoff;
      if (!record.finalError && (backoff === undefined || backoff.nextAttemptAt <= this.#config.clock.now())) this.#track(this.#renewInBackground(record));
      return undefined;
    }
    const decider = this.#onDemandDecider;
    if (decider === undefined) return undefined;
    // No decision (no ask request) is spent on a name that could not be ordered anyway.
    if (this.#onDemandLimiter?.hasToken() !== true) {
      this.#events.emit('on_demand_denied', { name, reason: 'on-demand rate limit reached' });
      return undefined;
    }
    let decision: Decision;
    try {
      // Aborted when the handshakes waiting for it are gone; the order that may follow is not.
      decision = await decider.decide(name, abandoned);
    } catch (error) {
      if (error instanceof OnDemandBusyError) this.#events.emit('on_demand_denied', { name, reason: 'too many on-demand decisions in progress' });
      throw error;
    }
    if (!decision.allowed) {
      this.#events.emit('on_demand_denied', { name, reason: decision.reason });
      this.#log.debug({ name, reason: decision.reason }, 'on-demand certificate denied');
      return undefined;
    }
    const [fresh] = this.#register([name], undefined);
    if (!fresh) return undefined;
    fresh.onDemand = true;
    if (!this.#inflight.has(fresh.certName) && fresh.materialId === undefined) {
      // Stored by an earlier run? Then no order is needed.
      if (await this.#loadStored(fresh, { eager: true })) {
        this.#scheduleNext(fresh);
        return this.#cache.peek(name);
      }
      // Failed before (this process, an earlier run, a peer) and still backing off, or refused finally: no order.
      const blocked = await this.#restoreFailureState(fresh, undefined);
      if (blocked) {
        this.#scheduleNext(fresh);
        this.#log.debug({ name, err: blocked }, 'on-demand name is backing off');
        return undefined;
      }
      if (!this.#onDemandLimiter?.tryTake()) {
        this.#unregister(fresh);
        this.#events.emit('on_demand_denied', { name, reason: 'on-demand rate limit reached', rateLimited: true });
        return undefined;
      }
    }
    try {
      await this.#obtain(fresh, { renewal: false, force: false, signal });
    } catch (error) {
      this.#log.warn({ err: error, name }, 'on-demand certificate could not be obtained');
      return undefined;
    }
    return this.#cache.peek(name);
  }

  #unregister(record: ManagedRecord): void {
    if (this.#records.get(record.certName) !== record) return;
    this.#records.delete(record.certName);
    for (const name of record.names) this.#nameIndex.delete(name);
  }

  // --------------------------------------------------------------- obtaining

  /** Obtains (or adopts what another process stored) with coalescing and the order concurrency limit. */
  #obtain(record: ManagedRecord, options: { renewal: boolean; force: boolean; signal: AbortSignal }): Promise<ObtainOutcome> {
    return this.#inflight.run(
      record.certName,
      async () => {
        // Every caller honours a running backoff and a final refusal (no I/O: what this process knows); only force skips them.
        if (!options.force) this.#throwIfBlocked(record, record.backoff ? { ...record.backoff, final: record.finalError } : undefined);
        // A certificate still being served can wait for a quieter moment; a missing or expired one cannot.
        if (this.#pacer && this.#servesValidCertificate(record)) await this.#pacer.admit(options.signal);
        return this.#orders.run(() => this.#obtainLocked(record, options), options.signal);
      },
      options.signal,
    );
  }

  #servesValidCertificate(record: ManagedRecord): boolean {
    return record.materialId !== undefined && record.notAfter !== undefined && record.notAfter > this.#config.clock.now();
  }

  /** Runs `fn` holding the certificate's storage lock: every write of a certificate set happens under it. */
  async #withCertificateLock<T>(record: ManagedRecord, signal: AbortSignal, fn: (lockName: string) => Promise<T>): Promise<T> {
    const lockName = certificateLockName(record.certName);
    await this.#storage.lock(lockName, { signal });
    try {
      return await fn(lockName);
    } finally {
      await this.#storage.unlock(lockName).catch((error: unknown) => this.#log.warn({ err: error, lock: lockName }, 'could not release lock'));
    }
  }

  async #obtainLocked(record: ManagedRecord, options: { renewal: boolean; force: boolean; signal: AbortSignal }): Promise<ObtainOutcome> {
    try {
      return await this.#withCertificateLock(record, options.signal, (lockName) => this.#obtainHoldingLock(record, lockName, options));
    } catch (error) {
      // The lock itself could not be taken (a broken storage): a failure of the name too, or it is retried in a hot loop.
      await this.#noteFailure(record, error, options.renewal, options.signal);
      throw error;
    }
  }

  async #obtainHoldingLock(record: ManagedRecord, lockName: string, options: { renewal: boolean; force: boolean; signal: AbortSignal }): Promise<ObtainOutcome> {
    try {
      return await this.#attemptHoldingLock(record, lockName, options);
    } catch (error) {
      if (error instanceof LockLostError) {
        // Another process took this name over and stores its own result: not a failure of the stored certificate,
        // so no backoff (and no write to a sidecar we no longer own); the next attempt finds its certificate and adopts it.
        this.#log.warn({ names: record.names, lock: lockName }, 'lock lost while obtaining; another process took over this name');
        this.#markAccounted(record, error);
        throw error;
      }
      // Recorded before the lock is released, so the peer that takes it next reads this failure and backs off too.
      await this.#noteFailure(record, error, options.renewal, options.signal);
      throw error;
    }
  }

  /** Everything between taking the lock and storing: any error thrown here is a failure of the name (see #obtainHoldingLock). */
  async #attemptHoldingLock(record: ManagedRecord, lockName: string, { renewal, force, signal }: { renewal: boolean; force: boolean; signal: AbortSignal }): Promise<ObtainOutcome> {
    const servedSerial = record.serialNumber;
    // Another process may have obtained or renewed it while we waited for the lock.
    // The sidecar decides; the whole set is read and verified only when it is to be adopted.
    for (const issuer of record.settings.issuers) {
      const meta = await this.#readMeta(issuer.key, record.certName);
      if (!meta || !this.#usable(meta, record)) continue;
      const renewedElsewhere = servedSerial !== undefined && meta.serialNumber !== servedSerial;
      const due = this.#dueAtFor(meta) <= this.#config.clock.now();
      if (!renewedElsewhere && (force || due) && (servedSerial !== undefined || due)) break;
      await this.#turns.turn();
      const set = await this.#readSet(issuer.key, record.certName);
      if (!set || !this.#usable(set.meta, record)) continue;
      await this.#turns.turn();
      this.#adopt(record, set, 'storage');
      record.finalError = false;
      this.#scheduleNext(record);
      return 'adopted';
    }

    // The shared failure state: a peer (or an earlier run) may have failed meanwhile, or been refused finally.
    const persisted = await loadFailureState(this.#storage, record.certName);
    if (persisted) this.#applyFailureState(record, persisted);
    if (!force) this.#throwIfBlocked(record, persisted);

    let vetoReason: string | undefined;
    this.#events.emit('cert_obtaining', {
      names: [...record.names],
      issuer: record.settings.issuers[0]?.key,
      renewal,
      veto: (reason: string) => {
        vetoReason = reason;
      },
    });
    if (vetoReason !== undefined) throw new AbortedError(`obtaining was vetoed: ${vetoReason}`);
    const why = renewal ? this.#renewalWhy(record, force) : undefined;

    const { set, material } = await this.#issueAndStore(record, signal, lockName);
    const hadFailures = persisted !== undefined || record.backoff !== undefined;
    await this.#turns.turn();
    this.#adopt(record, set, 'obtained', material);
    if (hadFailures) {
      await clearFailureState(this.#storage, record.certName).catch((e: unknown) => this.#log.warn({ err: e, name: record.certName }, 'could not clear the persisted failure state'));
    }
    record.backoff = undefined;
    record.finalError = false;
    record.obtainedAt = this.#config.clock.now();
    this.#scheduleNext(record);
    const payload = {
      names: [...record.names],
      issuer: set.meta.issuerKey,
      renewal,
      notBefore: new Date(set.meta.notBefore),
      notAfter: new Date(set.meta.notAfter),
      serialNumber: set.meta.serialNumber,
      ...(why ? { renewalReason: why.reason, replacedEarlyByAri: why.early } : {}),
    };
    this.#events.emit('cert_obtained', payload);
    if (renewal) this.#events.emit('cert_renewed', payload);
    this.#log.info({ names: record.names, issuer: set.meta.issuerKey, notAfter: set.meta.notAfter, renewal }, renewal ? 'certificate renewed' : 'certificate obtained');
    return 'obtained';
  }

  /** Makes a key and CSR, asks each issuer in turn, stores the first certificate obtained. */
  async #issueAndStore(record: ManagedRecord, signal: AbortSignal, heldLock: string | undefined): Promise<{ set: CertificateSet; material: CertificateMaterial }> {
    // A broken storage is found before any CA call; a check that passed is trusted for a minute
    // (a mass renewal would otherwise add three synced writes per certificate).
    const now = this.#config.clock.now();
    if (this.#storageCheckedAt === undefined || now - this.#storageCheckedAt > STORAGE_CHECK_INTERVAL_MS || now < this.#storageCheckedAt) {
      await checkStorageWritable(this.#storage);
      this.#storageCheckedAt = now;
    }
    const errors: Error[] = [];
    const issuers = record.settings.issuers;
    for (const [index, issuer] of issuers.entries()) {
      if (signal.aborted) throw new AbortedError('The operation was aborted', { cause: signal.reason });
      try {
        // The set must be storable at its own path (a file where its folder should be...) before the CA issues it.
        if (heldLock !== undefined) await checkCertificateWritable(this.#storage, certificateKeys(issuer.key, record.certName));
        await this.#limiterFor(issuer).take(signal);
        // A renewal is background work: its key and CSR are made off the event loop. A first obtain has a caller
        // waiting (start-up, a handshake) and skips the worker's start-up; it still runs in a turn of its own.
        const { keyPem, key, csr } = this.#servesValidCertificate(record)
          ? await this.#cpu.keyAndCsr(record.identifiers, record.settings.keyType)
          : await this.#turns.exclusive(() => createKeyAndCsr(record.identifiers, record.settings.keyType));
        await this.#turns.turn();
        const issued = await issuer.issue({
          identifiers: record.identifiers,
          csr,
          signal,
          ...(record.certPem !== undefined && record.issuerKey === issuer.key ? { replacesCertificatePem: record.certPem } : {}),
        });
        await this.#turns.turn();
        // Parsed and checked once (chain order, key match, names): the same material is stored and then served.
        const material = buildMaterial(issued.chainPem, key, { managed: true, checkValidity: false });
        const uncovered = record.names.filter((name) => !material.names.includes(name));
        if (uncovered.length > 0) throw new CertificateInvalidError(`the issued certificate does not cover ${uncovered.join(', ')}`);
        const meta = certificateMetaFrom({
          certPem: issued.chainPem,
          keyPem,
          issuerKey: issuer.key,
          names: record.names,
          issuerData: issued.issuerData,
          notBefore: material.notBefore,
          notAfter: material.notAfter,
          serialNumber: material.serialNumber,
          keyType: record.settings.keyType,
        });
        // A paused process whose lease expired must not overwrite what the new holder stored.
        if (heldLock !== undefined && hasLockLeaseCheck(this.#storage)) await this.#storage.assertLockHeld(heldLock);
        const set = await storeVerifiedCertificateSet(this.#storage, { certPem: issued.chainPem, keyPem, meta });
        return { set, material };
      } catch (error) {
        if (error instanceof StorageError) this.#storageCheckedAt = undefined;
        // Lost lease: another process owns this name now; asking the next issuer would only order a duplicate.
        if (signal.aborted || error instanceof LockLostError) throw error;
        errors.push(error as Error);
        // The last issuer's failure goes to the caller, which reports it (cert_failed and its warn, or the CLI's line):
        // logging it here too would say it twice. A failure that falls back to the next issuer is only said here.
        if (index < issuers.length - 1) this.#log.warn({ err: error, names: record.names, issuer: issuer.key }, 'issuer failed; trying the next one');
        else this.#log.debug({ err: error, names: record.names, issuer: issuer.key }, 'issuer failed');
      }
    }
    throw errors.length === 1 ? errors[0] : new CertKeeperError(
      (errors[errors.length - 1] as CertKeeperError | undefined)?.code ?? 'ERR_CHALLENGE_FAILED',
      `every issuer failed: ${errors.map((e) => e.message).join('; ')}`,
      { cause: errors[errors.length - 1] },
    );
  }

  async #recordFailure(record: ManagedRecord, error: unknown, renewal: boolean): Promise<void> {
    const now = this.#config.clock.now();
    const retryAt = (error as { retryAt?: unknown }).retryAt;
    record.backoff = recordFailure(record.backoff, error, now, {
      ...(record.notAfter !== undefined ? { notAfter: record.notAfter } : {}),
      ...(typeof retryAt === 'number' ? { retryAfter: retryAt } : {}),
    });
    record.finalError = error instanceof AcmeProblemError && FINAL_PROBLEMS.has(error.shortType);
    const emergency = record.notBefore !== undefined && record.notAfter !== undefined && isEmergency({ notBefore: record.notBefore, notAfter: record.notAfter }, now);
    const nextAttemptAt = record.finalError ? undefined : new Date(record.backoff.nextAttemptAt);
    const level = emergency ? 'error' : 'warn';
    this.#log[level]({ err: error, names: record.names, attempt: record.backoff.failures, nextAttemptAt, emergency }, renewal ? 'certificate renewal failed' : 'certificate could not be obtained');
    this.#events.emit('cert_failed', {
      names: [...record.names],
      issuer: record.issuerKey,
      renewal,
      error: error as Error,
      attempt: record.backoff.failures,
      nextAttemptAt,
      emergency,
      serialNumber: record.serialNumber,
      notAfter: record.notAfter !== undefined ? new Date(record.notAfter) : undefined,
    });
    // Persisted for every name, so a restart and every peer sharing the storage honour it.
    const backoff = record.backoff;
    await saveFailureState(this.#storage, record.certName, { ...backoff, ...(record.finalError ? { final: true } : {}) })
      .catch((e: unknown) => this.#log.warn({ err: e, name: record.certName }, 'could not persist the failure state'));
    // Also beside the certificate, where a lazily loaded set's sidecar brings it back.
    if (record.issuerKey !== undefined) {
      await updateCertificateMeta(this.#storage, record.issuerKey, record.certName, (meta) => ({
        ...meta,
        renewal: {
          ...meta.renewal,
          failures: backoff.failures,
          nextAttemptAt: new Date(backoff.nextAttemptAt).toISOString(),
          ...(backoff.lastError
            ? { lastError: { ...(knownErrorCode(backoff.lastError.code) ? { code: backoff.lastError.code } : {}), message: backoff.lastError.message, at: new Date(backoff.lastError.at).toISOString() } }
            : {}),
        },
      })).catch((e: unknown) => this.#log.warn({ err: e, name: record.certName }, 'could not persist renewal state'));
    }
  }

  /**
   * Reports `error` as a failure of the record's name unless it already was, or is no failure: a backoff still
   * running, a lost lease (a peer owns the name), or work stopped by its signal or by close().
   */
  async #noteFailure(record: ManagedRecord, error: unknown, renewal: boolean, signal: AbortSignal): Promise<void> {
    if (typeof error === 'object' && error !== null) {
      if (this.#accounted.get(error)?.has(record)) return;
      this.#markAccounted(record, error);
    }
    if (error instanceof BackoffError || error instanceof LockLostError || error instanceof ClosedError) return;
    if (signal.aborted || this.#closing) return;
    await this.#recordFailure(record, error, renewal);
  }

  #markAccounted(record: ManagedRecord, error: object): void {
    let records = this.#accounted.get(error);
    if (!records) this.#accounted.set(error, (records = new WeakSet()));
    records.add(record);
  }

  /** Throws the error to report while `state` forbids an attempt now (that error is not a new failure). */
  #throwIfBlocked(record: ManagedRecord, state: FailureState | undefined): void {
    const blocked = blockedBy(record.certName, state, this.#config.clock.now());
    if (!blocked) return;
    this.#markAccounted(record, blocked);
    throw blocked;
  }

  #applyFailureState(record: ManagedRecord, state: FailureState): void {
    record.backoff = { failures: state.failures, nextAttemptAt: state.nextAttemptAt, ...(state.lastError ? { lastError: state.lastError } : {}) };
    record.finalError = state.final === true;
  }

  /** One listing of the persisted failure states; undefined when it failed (then each name's state is read). */
  async #listFailureStates(): Promise<ReadonlySet<string> | undefined> {
    try {
      this.#failureListing = await listFailureStates(this.#storage);
    } catch (error) {
      this.#log.warn({ err: error }, 'could not list persisted failure states; reading them name by name');
      this.#failureListing = undefined;
    }
    return this.#failureListing;
  }

  /**
   * Reads a name's persisted failure state (when `listed` says there is one, or without a listing) into its record;
   * returns the error to report while it forbids an attempt. An unreadable state is logged and ignored here: the
   * read under the lock before ordering fails the same way, and that counts as a failure of the name.
   */
  async #restoreFailureState(record: ManagedRecord, listed: ReadonlySet<string> | undefined): Promise<CertKeeperError | undefined> {
    if (listed !== undefined && !hasFailureState(listed, record.certName)) return undefined;
    let state: FailureState | undefined;
    try {
      state = await loadFailureState(this.#storage, record.certName);
    } catch (error) {
      this.#log.warn({ err: error, name: record.certName }, 'could not read the persisted failure state');
      return undefined;
    }
    if (!state) return undefined;
    this.#applyFailureState(record, state);
    const blocked = blockedBy(record.certName, state, this.#config.clock.now());
    if (blocked) this.#markAccounted(record, blocked);
    return blocked;
  }

  #limiterFor(issuer: Issuer): RateLimiter {
    let limiter = this.#limiters.get(issuer.key);
    if (!limiter) {
      const configured = this.#config.rateLimit;
      if (configured === false) limiter = new UnlimitedRateLimiter();
      else if (configured !== undefined) limiter = createRateLimiter(configured, this.#config.clock);
      else if (issuer instanceof AcmeIssuer && issuer.config.directoryUrl.includes('api.letsencrypt.org')) {
        limiter = createRateLimiter(RATE_LIMIT_PRESETS.letsencrypt, this.#config.clock);
      } else limiter = new UnlimitedRateLimiter();
      this.#limiters.set(issuer.key, limiter);
    }
    return limiter;
  }

  // -------------------------------------------------------------- scheduling

  /** Due time of a stored certificate, computed exactly as for a served one (same jitter seed), so both agree. */
  #dueAtFor(meta: CertificateMeta): number {
    return storedRenewalDueAt(meta, this.#config.renewalWindowRatio);
  }

  #renewalDueAt(record: ManagedRecord): number | undefined {
    if (record.notBefore === undefined || record.notAfter === undefined) return undefined;
    return this.#plannedDueAt(record.notBefore, record.notAfter, record.serialNumber ?? record.certName, record.ariWindow, record.ariSelectedTime);
  }

  #plannedDueAt(notBefore: number, notAfter: number, seed: string, ari: { windowStart: number; windowEnd: number } | undefined, ariSelectedTime: number | undefined): number {
    return this.#renewalPlan(notBefore, notAfter, seed, ari, ariSelectedTime).dueAt;
  }

  /** Why the served certificate is being renewed, and whether ARI brought it forward of the lifetime rule. */
  #renewalWhy(record: ManagedRecord, force: boolean): { reason: RenewalSource | 'forced'; early: boolean } | undefined {
    if (force) return { reason: 'forced', early: false };
    if (record.notBefore === undefined || record.notAfter === undefined) return undefined;
    const seed = record.serialNumber ?? record.certName;
    const plan = this.#renewalPlan(record.notBefore, record.notAfter, seed, record.ariWindow, record.ariSelectedTime);
    const lifetimeDue = renewalDueTime({ notBefore: record.notBefore, notAfter: record.notAfter, ratio: this.#config.renewalWindowRatio, random: () => seededRandom(seed) });
    return { reason: plan.source, early: plan.source === 'ari' && plan.dueAt < lifetimeDue };
  }

  #renewalPlan(notBefore: number, notAfter: number, seed: string, ari: { windowStart: number; windowEnd: number } | undefined, ariSelectedTime: number | undefined): RenewalPlan {
    return planRenewal({
      notBefore,
      notAfter,
      ratio: this.#config.renewalWindowRatio,
      // Jitter seeded by the serial: stable across restarts and across processes sharing storage.
      random: () => seededRandom(seed),
      ...(ari ? { ari, ariSelectedTime } : {}),
    });
  }

  /** Time to (re)try: renewal due, and no failure backoff (possibly loaded from storage) still running. */
  #isDue(record: ManagedRecord): boolean {
    const now = this.#config.clock.now();
    if (record.backoff !== undefined && record.backoff.nextAttemptAt > now) return false;
    const dueAt = this.#renewalDueAt(record);
    return dueAt === undefined || dueAt <= now;
  }

  #scheduleNext(record: ManagedRecord): void {
    if (this.#closing || this.#records.get(record.certName) !== record) return;
    if (record.finalError) {
      this.#queue.unschedule(record.certName);
      return;
    }
    let renewalAt = this.#renewalDueAt(record) ?? this.#config.clock.now();
    if (record.obtainedAt !== undefined && record.notBefore !== undefined && record.notAfter !== undefined) {
      // A certificate that is due the moment it arrives (CA clock skew, an ARI window in the past) must not renew in a loop.
      const minimumAge = Math.min(MIN_RENEWAL_INTERVAL_MS, (record.notAfter - record.notBefore) / 10);
      renewalAt = Math.max(renewalAt, record.obtainedAt + minimumAge);
    }
    const dueAt = record.backoff !== undefined ? Math.max(record.backoff.nextAttemptAt, Math.min(renewalAt, record.backoff.nextAttemptAt)) : renewalAt;
    this.#queue.schedule(record.certName, dueAt);
  }

  #onDue(key: string): void {
    if (key.startsWith(ARI_KEY_PREFIX)) {
      const record = this.#records.get(key.slice(ARI_KEY_PREFIX.length));
      if (record) this.#track(this.#refreshAri(record));
      return;
    }
    const record = this.#records.get(key);
    if (record) this.#track(this.#renewInBackground(record));
  }

  /** Renewal or first obtain in the background; failures are reported and rescheduled, never thrown. */
  async #renewInBackground(record: ManagedRecord): Promise<void> {
    if (this.#closing) return;
    try {
      await this.#obtain(record, { renewal: record.serialNumber !== undefined, force: false, signal: this.#abort.signal });
    } catch (error) {
      if (!this.#closing) this.#log.debug({ err: error, names: record.names }, 'background obtain failed; rescheduled');
    } finally {
      this.#scheduleNext(record);
    }
  }

  #refreshAriSoon(record: ManagedRecord): void {
    const issuer = record.settings.issuers.find((i) => i.key === record.issuerKey);
    if (!issuer?.renewalInfo || record.certPem === undefined || this.#closing) return;
    this.#queue.schedule(ARI_KEY_PREFIX + record.certName, this.#config.clock.now());
  }

  /** Fetches ARI for the served certificate, reschedules renewal, persists the window, and schedules the next fetch. */
  async #refreshAri(record: ManagedRecord): Promise<void> {
    const issuer = record.settings.issuers.find((i) => i.key === record.issuerKey);
    const certPem = record.certPem;
    if (!issuer?.renewalInfo || certPem === undefined || record.notAfter === undefined) return;
    if (!shouldQueryAri({ notAfter: record.notAfter }, this.#config.clock.now())) return;
    let info: RenewalInfo | undefined;
    try {
      info = await issuer.renewalInfo(certPem, this.#abort.signal);
    } catch (error) {
      this.#log.debug({ err: error, names: record.names }, 'ARI request failed');
      this.#queue.schedule(ARI_KEY_PREFIX + record.certName, ariRetryAt(undefined, this.#config.clock.now()));
      return;
    }
    if (info === undefined) {
      // No usable answer: keep the lifetime rule, ask again later.
      this.#queue.schedule(ARI_KEY_PREFIX + record.certName, ariRetryAt(undefined, this.#config.clock.now()));
      return;
    }
    if (info.explanationUrl) this.#log.info({ names: record.names, explanationUrl: info.explanationUrl }, 'CA suggests a renewal window');
    const changed = record.ariWindow?.windowStart !== info.windowStart || record.ariWindow?.windowEnd !== info.windowEnd;
    record.ariWindow = { windowStart: info.windowStart, windowEnd: info.windowEnd };
    if (changed) record.ariSelectedTime = undefined;
    const plan = planRenewal({
      notBefore: record.notBefore ?? 0,
      notAfter: record.notAfter,
      ratio: this.#config.renewalWindowRatio,
      ari: record.ariWindow,
      ariSelectedTime: record.ariSelectedTime,
    });
    record.ariSelectedTime = plan.ariSelectedTime;
    this.#scheduleNext(record);
    this.#queue.schedule(ARI_KEY_PREFIX + record.certName, info.retryAfter);
    if (record.issuerKey !== undefined && plan.ariSelectedTime !== undefined && hasTryLock(this.#storage)) {
      // Written only under the certificate lock, and only if the stored set is still the one we asked about;
      // otherwise a peer's newer set could get this set's sidecar. Without tryLock the state stays in memory.
      const lockName = certificateLockName(record.certName);
      if (!(await this.#storage.tryLock(lockName).catch(() => false))) return;
      const selected = plan.ariSelectedTime;
      const serial = record.serialNumber;
      await updateCertificateMeta(this.#storage, record.issuerKey, record.certName, (meta) => meta.serialNumber !== serial ? meta : ({
        ...meta,
        renewal: {
          ...meta.renewal,
          ari: {
            windowStart: new Date(info.windowStart).toISOString(),
            windowEnd: new Date(info.windowEnd).toISOString(),
            selectedTime: new Date(selected).toISOString(),
            retryAfter: new Date(info.retryAfter).toISOString(),
            ...(info.explanationUrl ? { explanationUrl: info.explanationUrl } : {}),
          },
        },
      }))
        .catch((e: unknown) => this.#log.debug({ err: e }, 'could not persist ARI state'))
        .finally(() => this.#storage.unlock(lockName).catch(() => undefined));
    }
  }

  // ------------------------------------------------------------------ status

  #recordFor(name: string): ManagedRecord {
    const normalized = parseIdentifier(name).value;
    const certName = this.#nameIndex.get(normalized);
    const record = certName !== undefined ? this.#records.get(certName) : undefined;
    if (!record) throw new InvalidOptionError('name', `${normalized} is not managed by this keeper`);
    return record;
  }

  #statusOf(record: ManagedRecord): CertificateStatus {
    const dueAt = this.#queue.dueAt(record.certName);
    const lastError = record.backoff?.lastError;
    const plan = record.notBefore !== undefined && record.notAfter !== undefined
      ? this.#renewalPlan(record.notBefore, record.notAfter, record.serialNumber ?? record.certName, record.ariWindow, record.ariSelectedTime)
      : undefined;
    return {
      names: [...record.names],
      issuer: record.issuerKey,
      notBefore: record.notBefore !== undefined ? new Date(record.notBefore) : undefined,
      notAfter: record.notAfter !== undefined ? new Date(record.notAfter) : undefined,
      serialNumber: record.serialNumber,
      nextRenewalAt: dueAt !== undefined ? new Date(dueAt) : undefined,
      state: record.serialNumber !== undefined ? 'valid' : record.backoff ? 'failed' : 'obtaining',
      failures: record.backoff?.failures ?? 0,
      lastError: lastError ? { code: lastError.code, message: lastError.message, at: new Date(lastError.at) } : undefined,
      source: record.onDemand === true ? 'on-demand' : 'managed',
      renewalDueAt: plan ? new Date(plan.dueAt) : undefined,
      renewalReason: plan?.source,
      ariWindow: record.ariWindow ? { start: new Date(record.ariWindow.windowStart), end: new Date(record.ariWindow.windowEnd) } : undefined,
    };
  }

  // --------------------------------------------------------------- lifecycle

  #track<T>(promise: Promise<T>): Promise<T> {
    this.#work.add(promise);
    const forget = (): void => {
      this.#work.delete(promise);
    };
    promise.then(forget, forget);
    return promise;
  }

  #assertOpen(): void {
    if (this.#closing) throw new ClosedError();
  }

  async #doClose(): Promise<void> {
    this.#abort.abort(new ClosedError());
    this.#expiryWatch.close();
    this.#unmanaged.close();
    this.#clientCas.close();
    this.#queue.close();
    this.#orders.close();
    this.#pacer?.close();
    for (const limiter of this.#limiters.values()) limiter.close();
    this.#onDemandLimiter?.close();
    this.#onDemandDecider?.close();
    // Work in flight sees the abort, runs its cleanup (challenges, locks) and settles. A caller's promise
    // settles on abort while the shared obtain behind it (an issuer or a storage call that ignores the
    // signal) may still run: wait for that too, for at most closeTimeoutMs.
    const drained = (async () => {
      while (this.#work.size > 0 || this.#inflight.size > 0) {
        await Promise.allSettled([...this.#work, ...this.#inflight.running().map(([, call]) => call)]);
      }
    })();
    let timer: TimerHandle | undefined;
    // The clock's timers do not keep the process alive, but a caller is awaiting close(): this does, until it resolves.
    const keepAlive = setInterval(() => undefined, 60_000);
    const timedOut = await Promise.race([
      drained.then(() => false),
      new Promise<boolean>((resolve) => {
        timer = this.#config.clock.setTimer(() => resolve(true), this.#config.closeTimeoutMs);
      }),
    ]);
    timer?.cancel();
    clearInterval(keepAlive);
    if (timedOut) {
      const abandoned = this.#inflight.running().map(([name]) => name);
      this.#log.warn(
        { abandoned, tasks: this.#work.size, closeTimeoutMs: this.#config.closeTimeoutMs },
        'close: work still running after closeTimeoutMs was abandoned',
      );
    }
    // Notifications of the work that just settled go out (or give up) before storage closes.
    await this.#notifier?.close();
    await this.#issuers.close();
    await this.#cpu.close();
    this.#cache.close();
    this.#events.removeAll();
    if (this.#ownsStorage) await this.#storage.close?.();
  }
}

/** Only codes of the README's table are persisted (a foreign `code`, such as a Node errno, is left out). */
function knownErrorCode(code: string | undefined): code is string {
  return code !== undefined && Object.hasOwn(ERROR_CODES, code);
}
