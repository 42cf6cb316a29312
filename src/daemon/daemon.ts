/**
 * The daemon: one CertKeeper (the library's manager, storage and issuers)
 * managing the configured certificates, and for each certificate it serves,
 * obtains or renews, its files written and its deploy hooks run (deploy.ts).
 *
 * A configuration is a generation: keeper, storage, HTTP-01 endpoint,
 * deployer. reload() validates the new configuration completely, building
 * its options without starting anything, before the running generation is
 * touched; a bad one throws and the old one keeps running. A good one
 * replaces the old: the old keeper is closed (work in flight waits), the new
 * one loads the same storage, so nothing is issued again, and files already
 * current are not rewritten.
 */
import { EventEmitter } from 'node:events';
import { systemClock, type Clock } from '../clock.js';
import { resolveConfig } from '../config/index.js';
import { InvalidOptionError, ManageError } from '../errors.js';
import type { CertLoadedEvent, CertObtainedEvent } from '../events.js';
import type { Issuer } from '../issuers/types.js';
import { Closable } from '../lifecycle.js';
import type { Logger } from '../logger.js';
import { CertKeeper, type CertificateStatus, type RenewOptions } from '../manager/keeper.js';
import type { Storage } from '../storage/types.js';
import { notFound, openChallengeEndpoint, type ChallengeEndpoint } from './challenge-endpoint.js';
import type { CertificateConfig, DaemonConfig } from './config.js';
import { Deployer, type DeployedEvent, type DeployFailedEvent } from './deploy.js';
import { daemonKeeperOptions, openDaemonStorage, type DaemonKeeperParts } from './keeper.js';

export type { DeployedEvent, DeployFailedEvent };

export interface DaemonEvents {
  deployed: DeployedEvent;
  deploy_failed: DeployFailedEvent;
}

export interface DaemonOptions {
  logger: Logger;
  clock?: Clock;
}

export interface StartReport {
  certificates: number;
  /** Certificates that could not be served at start (the keeper keeps retrying them). */
  failed: Array<{ names: string[]; error: Error }>;
  /** The HTTP-01 proxy endpoint, when that mode is configured. */
  endpoint: { host: string; port: number } | undefined;
}

interface Prepared {
  config: DaemonConfig;
  storage: Storage;
  parts: DaemonKeeperParts;
}

interface Generation extends Prepared {
  keeper: CertKeeper;
  deployer: Deployer;
  stop: AbortController;
  endpoint: ChallengeEndpoint | undefined;
  stopping?: Promise<void>;
}

export class Daemon extends Closable {
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #events = new EventEmitter();
  /** Lineages whose deploy hooks have not succeeded since their files changed (kept across reloads). */
  readonly #pendingHooks = new Set<string>();
  #current: Generation | undefined;
  /** start/reload/close one at a time. */
  #switching: Promise<unknown> = Promise.resolve();

  constructor(options: DaemonOptions) {
    super('daemon');
    this.#log = options.logger.child({ component: 'daemon' });
    this.#clock = options.clock ?? systemClock;
    // close() waits for a start or reload in progress: closing the keeper at once is what ends it.
    this.closeSignal.addEventListener('abort', () => {
      if (this.#current) void this.#stop(this.#current);
    }, { once: true });
  }

  on<E extends keyof DaemonEvents>(event: E, listener: (payload: DaemonEvents[E]) => void): () => void {
    this.#events.on(event, listener);
    return () => this.#events.off(event, listener);
  }

  /** The running configuration. */
  get config(): DaemonConfig | undefined {
    return this.#current?.config;
  }

  get keeper(): CertKeeper | undefined {
    return this.#current?.keeper;
  }

  /** Starts managing the configuration's certificates; resolves once each is served or has failed its first attempt. */
  start(config: DaemonConfig): Promise<StartReport> {
    this.assertOpen();
    return this.#serially(async () => {
      if (this.#current) throw new InvalidOptionError('config', 'the daemon is already running; use reload() to change its configuration');
      return this.#launch(await this.#prepare(config));
    });
  }

  /**
   * Replaces the running configuration. Throws (ERR_INVALID_OPTION and the
   * like) before anything changes when the new one is not valid.
   */
  reload(config: DaemonConfig): Promise<StartReport> {
    this.assertOpen();
    return this.#serially(async () => {
      const next = await this.#prepare(config);
      const previous = this.#current;
      if (previous) await this.#stop(previous);
      try {
        const report = await this.#launch(next);
        this.#log.info({ path: config.path, certificates: config.certificates.length }, 'configuration reloaded');
        return report;
      } catch (error) {
        // Valid but not startable (e.g. the proxy port is taken): go back to what ran before.
        if (previous) {
          this.#log.error({ err: error }, 'the new configuration did not start; restarting the previous one');
          await this.#launch(await this.#prepare(previous.config));
        }
        throw error;
      }
    });
  }

  /** Renews a managed name now (force: even when not due); its files and hooks follow through the usual path. */
  async renew(name: string, options: RenewOptions = {}): Promise<CertificateStatus> {
    this.assertOpen();
    const current = this.#current;
    if (!current) throw new InvalidOptionError('name', 'the daemon is not running: start() it first');
    return current.keeper.renew(name, { ...options, signal: options.signal ? AbortSignal.any([options.signal, this.closeSignal]) : this.closeSignal });
  }

  /** Resolves when every deployment queued so far (files, hooks and their retries) has ended. */
  async deploymentsSettled(): Promise<void> {
    await this.#current?.deployer.settled();
  }

  protected async onClose(): Promise<void> {
    await this.#switching.catch(() => undefined);
    if (this.#current) await this.#stop(this.#current);
    this.#events.removeAllListeners();
  }

  /** A throwing listener is logged; it must not fail the deployment that reported to it. */
  #emit<E extends keyof DaemonEvents>(event: E, payload: DaemonEvents[E]): void {
    for (const listener of this.#events.listeners(event)) {
      try {
        (listener as (p: DaemonEvents[E]) => void)(payload);
      } catch (error) {
        this.#log.error({ err: error, event }, 'daemon event listener threw');
      }
    }
  }

  #serially<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#switching.catch(() => undefined).then(fn);
    this.#switching = run;
    return this.track(run);
  }

  /** Builds and validates everything of a configuration that starts nothing; throws on the first problem. */
  async #prepare(config: DaemonConfig): Promise<Prepared> {
    const storage = await openDaemonStorage(config, this.#log);
    try {
      const parts = daemonKeeperOptions(config, storage, this.#log);
      // The keeper's own resolver, so a configuration that passes here is one the keeper accepts.
      resolveConfig(parts.options);
      return { config, storage, parts };
    } catch (error) {
      void storage.close?.();
      throw error;
    }
  }

  async #launch(prepared: Prepared): Promise<StartReport> {
    const { config, storage, parts } = prepared;
    if (this.closed) {
      await storage.close?.();
      this.assertOpen();
    }
    const keeper = new CertKeeper(parts.options);
    const stop = new AbortController();
    const deployer = new Deployer({
      storage,
      clock: this.#clock,
      logger: this.#log,
      signal: stop.signal,
      pendingHooks: this.#pendingHooks,
      onDeployed: (event) => this.#emit('deployed', event),
      onFailed: (event) => this.#emit('deploy_failed', event),
    });
    const generation: Generation = { ...prepared, keeper, deployer, stop, endpoint: undefined };
    const byName = new Map<string, CertificateConfig>();
    for (const cert of config.certificates) for (const name of cert.names) byName.set(name, cert);
    const onCertificate = (event: CertObtainedEvent | CertLoadedEvent, renewal: boolean): void => {
      const cert = byName.get(event.names[0] as string);
      if (!cert) return;
      void this.track(deployer.deploy(cert, event.issuer ?? parts.issuerKey, renewal));
    };
    keeper.on('cert_loaded', (event) => onCertificate(event, false));
    keeper.on('cert_obtained', (event) => onCertificate(event, event.renewal));
    this.#current = generation;
    try {
      if (config.http01 !== false && config.http01.mode === 'proxy') {
        generation.endpoint = await openChallengeEndpoint(keeper.httpChallengeHandler(notFound), config.http01.port, config.http01.host, this.#log);
      }
    } catch (error) {
      this.#current = undefined;
      await this.#stop(generation);
      throw error;
    }
    const failed: StartReport['failed'] = [];
    try {
      await keeper.manageSync(config.certificates.map((cert) => [...cert.names]));
    } catch (error) {
      if (!(error instanceof ManageError)) throw error;
      // The keeper retries them with backoff; the daemon keeps running for the others.
      for (const failure of error.failures) failed.push({ names: [...failure.names], error: failure.error });
      for (const failure of failed) this.#log.error({ err: failure.error, names: failure.names }, 'certificate not served yet; retrying with backoff');
    }
    this.#log.info({ certificates: config.certificates.length, failed: failed.length }, 'certificates managed');
    return { certificates: config.certificates.length, failed, endpoint: generation.endpoint?.address };
  }

  #stop(generation: Generation): Promise<void> {
    generation.stopping ??= this.#release(generation);
    return generation.stopping;
  }

  async #release(generation: Generation): Promise<void> {
    if (this.#current === generation) this.#current = undefined;
    generation.stop.abort();
    await generation.keeper.close();
    await generation.deployer.settled();
    await generation.endpoint?.close();
    await Promise.allSettled(generation.parts.owned.map((issuer: Issuer) => issuer.close?.()));
    await generation.storage.close?.();
  }
}
