/**
 * CertKeeper: keeps certificates alive and serves them. This class only
 * orchestrates: it resolves the options once, wires the parts, offers the
 * public API and closes the parts in order. The behaviour lives in modules
 * named for it: manager/ (registry, manage, stored-sets, warm-up, obtain,
 * issue, handshake-loader, status, notifications), renewal/ (scheduler, ARI
 * refresh, failures and backoff), limits/, tls/, issuers/ and storage/.
 */
import { setMaxListeners } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type * as tls from 'node:tls';
import type { CertKeeperOptions, ManageSettings, ResolvedConfig } from '../config/index.js';
import { resolveConfig } from '../config/index.js';
import { CpuOffload } from '../cpu/offload.js';
import { InvalidOptionError } from '../errors.js';
import { TypedEmitter, type EventName, type Listener } from '../events.js';
import type { ChallengeResponder } from '../http/challenge.js';
import { nodeChallengeHandler } from '../http/node-handler.js';
import { createStatusHandler, type StatusHandler, type StatusHandlerOptions } from '../http/status-page.js';
import { buildStatusReport, type StatusReport } from '../http/status-report.js';
import { IssuerFactory } from '../issuers/factory.js';
import { Lifecycle } from '../lifecycle.js';
import { IssuerRateLimits } from '../limits/issuer-limits.js';
import type { Logger } from '../logger.js';
import { KeeperMetrics, type MetricFamily, type MetricsSnapshot } from '../observability/metrics.js';
import type { ExpiryWatch } from '../notify/expiry-watch.js';
import type { Notifier } from '../notify/notifier.js';
import type { RenewalScheduler } from '../renewal/scheduler.js';
import type { CertificateSet } from '../storage/certificates.js';
import { FileStorage } from '../storage/file.js';
import type { Storage } from '../storage/types.js';
import { ClientCaBundles, type TlsOptionsWithClientCa } from '../tls/client-ca.js';
import { ContextCache } from '../tls/context-cache.js';
import { UnmanagedCertificates, type LoadCertificateFilesOptions, type LoadCertificatePemOptions, type UnmanagedHandle } from '../tls/file-reload.js';
import { attachServer, buildTlsOptions } from '../tls/tls-options.js';
import { drainWithin } from './drain.js';
import { HandshakeLoader } from './handshake-loader.js';
import { ServedInvalidHandler } from './served-invalid.js';
import { manageInBackground, manageNow } from './manage.js';
import { createNotifier, watchExpiry } from './notifications.js';
import type { ObtainPipeline, OrderStats } from './obtain.js';
import { createParts, type KeeperParts } from './parts.js';
import { watchRevocation, type RevocationWatch } from './revocation.js';
import type { ManageEntry, Registry } from './registry.js';
import { statusOf, type CertificateStatus } from './status.js';
import { WarmUp } from './warm-up.js';

export type { CertificateStatus, ManageEntry };
export { DEFAULT_EAGER_LOAD_LIMIT, DEFAULT_LOAD_CONCURRENCY, DEFAULT_WARM_UP_CONCURRENCY } from '../defaults.js';
export { MIN_RENEWAL_INTERVAL_MS } from '../renewal/scheduler.js';
export { STORAGE_CHECK_INTERVAL_MS } from './issue.js';

export interface RenewOptions {
  /** Renew even if not due, and ignore the failure backoff (an operator's "retry now"). */
  force?: boolean;
  signal?: AbortSignal;
}

export class CertKeeper implements AsyncDisposable {
  readonly #config: ResolvedConfig;
  readonly #log: Logger;
  readonly #events: TypedEmitter;
  readonly #lifecycle = new Lifecycle('CertKeeper', () => this.#closeInOrder());
  /** Background work and orders in flight: close() waits for them, but at most closeTimeoutMs, so they are kept apart. */
  readonly #work = new Lifecycle('CertKeeper work');
  readonly #metrics = new KeeperMetrics();
  readonly #storage: Storage;
  readonly #ownsStorage: boolean;
  readonly #cache: ContextCache;
  readonly #unmanaged: UnmanagedCertificates;
  readonly #clientCas: ClientCaBundles;
  /** A worker thread for renewals' keys and CSRs and for every internal-CA signature. */
  readonly #cpu: CpuOffload;
  readonly #issuers: IssuerFactory;
  readonly #limits: IssuerRateLimits;
  readonly #registry: Registry;
  readonly #scheduler: RenewalScheduler;
  readonly #pipeline: ObtainPipeline;
  readonly #loader: HandshakeLoader;
  readonly #servedInvalid: ServedInvalidHandler;
  readonly #parts: KeeperParts;
  readonly #warmUp: WarmUp;
  readonly #expiryWatch: ExpiryWatch;
  readonly #notifier: Notifier | undefined;
  readonly #revocation: RevocationWatch | undefined;

  constructor(options: CertKeeperOptions = {}) {
    const signal = this.#lifecycle.signal;
    // Every operation in flight listens on this long-lived signal; more than 10 at once is normal, not a leak.
    setMaxListeners(0, signal);
    const config = (this.#config = resolveConfig(options));
    const { clock, logger } = config;
    this.#log = logger.child({ component: 'manager' });
    this.#events = new TypedEmitter((event, error) => this.#log.error({ err: error, event }, 'event listener threw'));
    for (const [event, listener] of Object.entries(config.on)) this.#events.on(event as EventName, listener as Listener<EventName>);
    this.#metrics.observe(this.#events);

    this.#ownsStorage = config.storage === undefined;
    // Lock calls are timed for metrics(); the proxy keeps the storage's identity and capabilities.
    const storage = (this.#storage = this.#metrics.instrumentStorage(config.storage ?? new FileStorage({ logger })));
    this.#cache = new ContextCache({
      capacity: config.cacheCapacity,
      loader: (name, { signal: loadSignal, abandoned }) => this.#loader.load(name, loadSignal, abandoned),
      loadTimeoutMs: config.onDemand ? config.onDemand.timeoutMs : 10_000,
      onEvict: ({ id, names }) => {
        const record = this.#registry.contextEvicted(id, names);
        if (record) this.#revocation?.checker.release(record.certName);
        this.#events.emit('cert_evicted', { names });
      },
      onInvalid: (invalid) => this.#servedInvalid.handle(invalid),
      logger: logger.child({ component: 'tls' }),
      clock,
    });
    const reloadDeps = { cache: this.#cache, events: this.#events, logger, clock };
    this.#unmanaged = new UnmanagedCertificates({ ...reloadDeps, defaultServerName: config.defaultServerName });
    this.#clientCas = new ClientCaBundles(reloadDeps);

    this.#cpu = new CpuOffload({ logger: logger.child({ component: 'cpu' }) });
    this.#issuers = new IssuerFactory(config, storage, this.#cpu);
    this.#limits = new IssuerRateLimits(config.rateLimit, clock);
    this.#parts = createParts({
      config,
      log: this.#log,
      events: this.#events,
      storage,
      cache: this.#cache,
      cpu: this.#cpu,
      issuers: this.#issuers,
      limits: this.#limits,
      signal,
      closing: () => this.#lifecycle.closed,
      track: (work) => this.#work.track(work),
      onServedChain: (record, certificates) => this.#revocation?.checker.prime(record, certificates),
    });
    ({ registry: this.#registry, scheduler: this.#scheduler, pipeline: this.#pipeline } = this.#parts);
    this.#loader = new HandshakeLoader(this.#parts);
    this.#servedInvalid = new ServedInvalidHandler(this.#parts);
    this.#warmUp = new WarmUp(this.#parts);

    this.#expiryWatch = watchExpiry(config, this.#events, () => this.list(), (name) => {
      // Files loaded by loadCertificateFiles() emit cert_loaded too; they announce their own expiry.
      const record = this.#registry.serving(name);
      return record ? statusOf(record, this.#scheduler) : undefined;
    });
    this.#notifier = createNotifier(config, this.#events, storage);
    this.#revocation = watchRevocation({ ...this.#parts, storage });
  }

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
    this.#lifecycle.assertOpen();
    await manageNow(this.#parts, this.#warmUp, this.#registry.register(entries, settings));
  }

  /** Like manageSync, but returns at once; obtains in the background with retries and reports through events. */
  manageAsync(entries: readonly ManageEntry[], settings?: ManageSettings): void {
    this.#lifecycle.assertOpen();
    manageInBackground(this.#parts, this.#registry.register(entries, settings));
  }

  /**
   * Obtains a certificate for the names now and stores it, without serving
   * or scheduling it (the foundation entry point; manageSync uses the same issuing).
   */
  async obtain(names: ManageEntry, settings?: ManageSettings & { signal?: AbortSignal }): Promise<CertificateSet> {
    this.#lifecycle.assertOpen();
    const [record] = this.#registry.prepare([names], settings);
    if (!record) throw new InvalidOptionError('names', 'must name at least one identifier');
    return this.#work.track(this.#pipeline.issueUnserved(record, this.#signalWith(settings?.signal)));
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
    this.#lifecycle.assertOpen();
    return this.#work.track(this.#unmanaged.loadFiles(options));
  }

  /** Serves a certificate given in memory (PEM); never renewed here. */
  loadCertificatePem(options: LoadCertificatePemOptions): UnmanagedHandle {
    this.#lifecycle.assertOpen();
    return this.#unmanaged.loadPem(options);
  }

  /**
   * Keeps a server's own context (used by clients that send no SNI) in step
   * with reloaded default certificates and client-CA bundles, and gives
   * clients without SNI on an IP address that address's certificate. Pass the
   * same options given to tlsOptions(). Returns a function that detaches.
   */
  attachServer(server: tls.Server, userOptions: TlsOptionsWithClientCa = {}): () => void {
    const { clientCA: _clientCA, ...rest } = userOptions;
    const detach = attachServer(server, this.#cache, rest);
    const unstaple = this.stapleOcsp(server);
    return () => {
      detach();
      unstaple();
    };
  }

  /**
   * Staples the cached good OCSP answer of the served certificate on the server's handshakes (only certificates
   * naming a responder have one; nothing is fetched in a handshake). serveHttps() and attachServer() call this.
   */
  stapleOcsp(server: tls.Server): () => void {
    return this.#revocation?.staple(server) ?? (() => undefined);
  }

  /**
   * A node:http listener answering ACME HTTP-01 requests; everything else goes
   * to `next`, or without one is redirected to HTTPS (308). Mounting it stops
   * certkeeper from opening its own HTTP-01 listener.
   */
  httpChallengeHandler(next?: (req: IncomingMessage, res: ServerResponse) => void): (req: IncomingMessage, res: ServerResponse) => void {
    return nodeChallengeHandler(this.#externalResponder('challenge handler'), next, (error) => this.#log.error({ err: error }, 'HTTP-01 responder failed'));
  }

  /**
   * The framework-neutral HTTP-01 responder, for a server of yours that answers challenges (the Express/Fastify/Koa
   * adapters call this): certkeeper stops opening its own HTTP-01 listener. Resolves true when it answered.
   */
  useExternalHttpChallengeResponder(): ChallengeResponder {
    return this.#externalResponder('challenge responder');
  }

  /**
   * The HTTP-01 responder, without any effect on the standalone listener.
   * @deprecated Use useExternalHttpChallengeResponder(): reading this no longer stops certkeeper's own listener.
   */
  get httpChallengeResponder(): ChallengeResponder {
    return this.#http01('challenge responder').responder;
  }

  /** Stops managing and serving these names (stored certificates are kept). */
  unmanage(names: readonly string[]): void {
    for (const { certName, names: served } of this.#registry.unmanage(names)) {
      this.#scheduler.unschedule(certName);
      this.#revocation?.checker.forget(certName);
      this.#cache.remove(served);
    }
  }

  /** Renews now if due (or always, with force), bypassing the failure backoff when forced. */
  async renew(name: string, options: RenewOptions = {}): Promise<CertificateStatus> {
    this.#lifecycle.assertOpen();
    const record = this.#registry.recordFor(name);
    const force = options.force === true;
    if (!force && !this.#scheduler.isDue(record)) return statusOf(record, this.#scheduler);
    if (force) record.finalError = false;
    const signal = this.#signalWith(options.signal);
    await this.#work.track(this.#pipeline.run(record, { renewal: record.serialNumber !== undefined, force, signal }));
    return statusOf(record, this.#scheduler);
  }

  status(name: string): CertificateStatus {
    return statusOf(this.#registry.recordFor(name), this.#scheduler);
  }

  /** Status of every managed certificate. */
  list(): CertificateStatus[] {
    return [...this.#registry.all()].map((record) => statusOf(record, this.#scheduler));
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

  /** The renewal and ARI queues: names scheduled, ticks, and heap entries the ticks looked at (an idle tick: 1). */
  schedulerStats(): ReturnType<RenewalScheduler['stats']> {
    return this.#scheduler.stats();
  }

  /**
   * Peak and current number of orders in flight; renewals admitted by the pacer (and how many of them while the
   * server was busy); tasks run by the worker thread that makes keys, CSRs and internal-CA signatures of renewals.
   */
  orderStats(): OrderStats & { workerTasks: number } {
    return { ...this.#pipeline.stats(), workerTasks: this.#cpu.stats.tasks };
  }

  /**
   * Settles when every notification in flight is delivered or given up, retries included (close() lets
   * only the attempt under way finish): a one-shot command waits for this before closing.
   */
  notificationsSettled(): Promise<void> {
    return this.#notifier?.idle() ?? Promise.resolve();
  }

  /**
   * Stops timers, waits for work in flight (at most `closeTimeoutMs`, then logs a warn naming what it
   * abandoned), closes listeners and releases this process's locks. Idempotent.
   */
  close(): Promise<void> {
    return this.#lifecycle.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #metricsSnapshot(): MetricsSnapshot {
    return { certificates: this.list(), cache: this.#cache.stats(), now: this.#config.clock.now() };
  }

  #signalWith(callerSignal: AbortSignal | undefined): AbortSignal {
    return callerSignal ? AbortSignal.any([callerSignal, this.#lifecycle.signal]) : this.#lifecycle.signal;
  }

  #http01(what: string): NonNullable<IssuerFactory['http01']> {
    const solver = this.#issuers.http01;
    if (!solver) throw new InvalidOptionError('challenges.http01', `HTTP-01 is disabled, so there is no ${what}`);
    return solver;
  }

  /** The responder of a server of the user's: from now on it answers challenges, so certkeeper opens no listener of its own. */
  #externalResponder(what: string): ChallengeResponder {
    const solver = this.#http01(what);
    solver.disableListener();
    return solver.responder;
  }

  /** Runs once, after close() aborted the keeper's signal. */
  async #closeInOrder(): Promise<void> {
    // Timers and waiters first, so nothing new starts while work in flight unwinds.
    const stopping = [this.#expiryWatch.close(), this.#revocation?.close(), this.#unmanaged.close(), this.#clientCas.close(), this.#scheduler.close(), this.#pipeline.close(), this.#limits.close(), this.#loader.close()];
    await Promise.all(stopping);
    await this.#drain();
    // Notifications of the work that just settled go out (or give up) before storage closes.
    await this.#notifier?.close();
    await this.#issuers.close();
    await this.#cpu.close();
    await this.#cache.close();
    this.#events.removeAll();
    if (this.#ownsStorage) await this.#storage.close?.();
  }

  /** Work in flight sees the abort, runs its cleanup (challenges, locks) and settles, within closeTimeoutMs. */
  async #drain(): Promise<void> {
    const { clock, closeTimeoutMs } = this.#config;
    if (!(await drainWithin(this.#work, closeTimeoutMs, clock))) return;
    const abandoned = this.#pipeline.running().map(([name]) => name);
    this.#log.warn({ abandoned, tasks: this.#work.pending, closeTimeoutMs }, 'close: work still running after closeTimeoutMs was abandoned');
  }
}
