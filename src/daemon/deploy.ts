/**
 * From a certificate in storage to a deployed one: its files written (only
 * when they changed), then its deploy hooks run, each retried on failure
 * without renewing again. Deployments of one lineage run one after the
 * other, so a renewal landing while the previous set's hooks still retry
 * cannot interleave its files with theirs.
 */
import type { Clock } from '../clock.js';
import { AbortedError, DeployError } from '../errors.js';
import type { Logger } from '../logger.js';
import { loadCertificateSet } from '../storage/certificates.js';
import type { Storage } from '../storage/types.js';
import type { CertificateConfig } from './config.js';
import { writeCertificateFiles, type LineageFiles } from './files.js';
import { runHookWithRetries, type DeployedCertificate, type HookOutcome } from './hooks.js';
import { sleep } from '../clock.js';
import { DEFAULT_DEPLOY_HOOK_RETRIES, DEFAULT_DEPLOY_HOOK_RETRY_DELAY_MS } from '../defaults.js';

export interface DeployedEvent {
  names: string[];
  lineage: string;
  files: LineageFiles;
  serialNumber: string;
  /** False when the files already held this certificate (no hook ran). */
  changed: boolean;
  hooks: Array<{ command: readonly string[]; ok: boolean; attempts: number; error: Error | undefined }>;
}

export interface DeployFailedEvent {
  names: string[];
  lineage: string;
  /** DeployError (ERR_DEPLOY): `stage` says files or hook. */
  error: Error;
  attempt: number;
  /** Undefined when no retry is left. */
  retryInMs: number | undefined;
}

export interface DeployerOptions {
  storage: Storage;
  clock: Clock;
  logger: Logger;
  signal: AbortSignal;
  /** Lineages whose hooks have not succeeded yet; shared across reloads, so a new config still runs them. */
  pendingHooks: Set<string>;
  onDeployed(event: DeployedEvent): void;
  onFailed(event: DeployFailedEvent): void;
}

export class Deployer {
  readonly #options: DeployerOptions;
  readonly #log: Logger;
  readonly #chains = new Map<string, Promise<void>>();

  constructor(options: DeployerOptions) {
    this.#options = options;
    this.#log = options.logger;
  }

  /** Queues a deployment of the stored certificate; resolves when it (and its hooks' retries) ended. */
  deploy(cert: CertificateConfig, issuer: string, renewal: boolean): Promise<void> {
    const previous = this.#chains.get(cert.lineage) ?? Promise.resolve();
    const next = previous.then(() => this.#deploy(cert, issuer, renewal)).catch((error: unknown) => {
      if (!(error instanceof AbortedError)) this.#log.error({ err: error, names: [...cert.names] }, 'deployment failed');
    });
    this.#chains.set(cert.lineage, next);
    void next.then(() => {
      if (this.#chains.get(cert.lineage) === next) this.#chains.delete(cert.lineage);
    });
    return next;
  }

  async #deploy(cert: CertificateConfig, issuer: string, renewal: boolean): Promise<void> {
    const { signal, pendingHooks } = this.#options;
    const names = [...cert.names];
    let written: { changed: boolean; files: LineageFiles; serialNumber: string; notAfter: Date } | undefined;
    for (let attempt = 1; written === undefined; attempt++) {
      if (signal.aborted) throw new AbortedError('deployment stopped', { cause: signal.reason });
      try {
        const set = await loadCertificateSet(this.#options.storage, issuer, cert.names[0] as string);
        const result = await writeCertificateFiles(cert.lineage, set.certPem, set.keyPem, cert.files);
        written = { ...result, serialNumber: set.meta.serialNumber, notAfter: new Date(set.meta.notAfter) };
      } catch (error) {
        const failure = error instanceof DeployError ? error : new DeployError('files', cert.lineage, `cannot deploy ${names.join(', ')}: ${(error as Error).message}`, { cause: error });
        const retryInMs = attempt <= DEFAULT_DEPLOY_HOOK_RETRIES ? DEFAULT_DEPLOY_HOOK_RETRY_DELAY_MS * 2 ** (attempt - 1) : undefined;
        this.#log.error({ err: failure, names, lineage: cert.lineage, attempt, retryInMs }, 'cannot write the certificate files');
        this.#options.onFailed({ names, lineage: cert.lineage, error: failure, attempt, retryInMs });
        if (retryInMs === undefined) return;
        await sleep(this.#options.clock, retryInMs, signal);
      }
    }
    if (written.changed) {
      this.#log.info({ names, lineage: cert.lineage, serialNumber: written.serialNumber }, 'certificate files written');
      if (cert.deployHooks.length > 0) pendingHooks.add(cert.lineage);
    }
    const outcomes: HookOutcome[] = [];
    if (pendingHooks.has(cert.lineage)) {
      const deployed: DeployedCertificate = { names, lineage: cert.lineage, files: written.files, serialNumber: written.serialNumber, notAfter: written.notAfter, issuer, renewal };
      // One after the other, in the configured order: a later hook may rely on an earlier one (copy, then reload).
      for (const hook of cert.deployHooks) {
        const outcome = await runHookWithRetries(hook, deployed, {
          clock: this.#options.clock,
          logger: this.#log,
          signal,
          onFailure: ({ attempt, error, retryInMs }) => this.#options.onFailed({ names, lineage: cert.lineage, error, attempt, retryInMs }),
        });
        outcomes.push(outcome);
        if (outcome.error instanceof AbortedError) throw outcome.error;
      }
      if (outcomes.every((o) => o.ok)) pendingHooks.delete(cert.lineage);
    }
    this.#options.onDeployed({
      names,
      lineage: cert.lineage,
      files: written.files,
      serialNumber: written.serialNumber,
      changed: written.changed,
      hooks: outcomes.map((o) => ({ command: o.hook.command, ok: o.ok, attempts: o.attempts, error: o.error })),
    });
  }

  /** Resolves when every queued deployment has ended (aborted ones included). */
  async settled(): Promise<void> {
    while (this.#chains.size > 0) await Promise.allSettled([...this.#chains.values()]);
  }
}
