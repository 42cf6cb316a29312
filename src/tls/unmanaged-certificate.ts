/**
 * One unmanaged certificate in service: file-backed ones are re-read when
 * their files change, and each new pair is validated in full before it is
 * swapped in (see file-reload.ts for the rules).
 */
import type { Clock, TimerHandle } from '../clock.js';
import { CertificateInvalidError, CertKeeperError, type CertificateFileError } from '../errors.js';
import type { TypedEmitter } from '../events.js';
import { Closable } from '../lifecycle.js';
import type { Logger } from '../logger.js';
import { buildMaterial, type CertificateMaterial } from './certificate-material.js';
import type { ContextCache } from './context-cache.js';
import { ExpiryWarnings } from './expiry-warnings.js';
import { FileWatcher, type WatchTuning } from './file-watch.js';
import { fingerprint, looseKeyFileMode, readReloadFile, reloadFailureReason } from './reload-files.js';

/** What a reload did: swapped in a new certificate, found nothing new, or kept the old one after a failure. */
export type ReloadOutcome = 'reloaded' | 'unchanged' | 'failed';

export interface UnmanagedHandle {
  /** The certificate served now. */
  readonly material: CertificateMaterial;
  /** Names it covers (normalised). */
  readonly names: readonly string[];
  readonly certFile: string | undefined;
  readonly keyFile: string | undefined;
  /** Re-reads the files now (file-backed only; a memory one resolves 'unchanged'). */
  reload(): Promise<ReloadOutcome>;
  /** Stops watching and expiry timers (after a check in progress); the certificate stays in service. Idempotent. */
  close(): Promise<void>;
  /** Stops serving the certificate at once, then close(). */
  remove(): Promise<void>;
}

export interface UnmanagedCertificatesOptions {
  cache: ContextCache;
  events: Pick<TypedEmitter, 'emit'>;
  logger: Logger;
  clock: Clock;
  /** When set, a certificate covering it becomes the default (clients without SNI); otherwise the first one loaded does, if there is none. */
  defaultServerName?: string | undefined;
}

export interface ResolvedFileOptions {
  certFile: string;
  keyFile: string;
  passphrase: string | undefined;
  watch: boolean;
  tuning: Required<WatchTuning>;
}

export class UnmanagedCertificate extends Closable implements UnmanagedHandle {
  readonly #opts: UnmanagedCertificatesOptions;
  readonly #log: Logger;
  readonly #files: ResolvedFileOptions | undefined;
  readonly #onClose: () => void;
  #material: CertificateMaterial;
  /** Content fingerprint of the last pair tried (served or refused), so an unchanged refused pair is not reported again. */
  #lastSeen: string | undefined;
  #lastOutcome: ReloadOutcome = 'unchanged';
  /** A refused pair seen once while watching: reported only if it is still there after a settle time (a writer may be between its two renames). */
  #suspect: { seen: string; since: number } | undefined;
  #settleTimer: TimerHandle | undefined;
  /** The next check reports a refused pair at once (an explicit reload()). */
  #reportNow = false;
  #keyModeWarned: string | undefined;
  #watcher: FileWatcher | undefined;
  readonly #expiry: ExpiryWarnings;

  constructor(
    options: UnmanagedCertificatesOptions,
    log: Logger,
    material: CertificateMaterial,
    files: ResolvedFileOptions | undefined,
    seen: string | undefined,
    onClose: () => void,
  ) {
    super('UnmanagedCertificate');
    this.#opts = options;
    this.#log = log;
    this.#material = material;
    this.#files = files;
    this.#lastSeen = seen;
    this.#onClose = onClose;
    this.#expiry = new ExpiryWarnings({ clock: options.clock, logger: log, events: options.events });
  }

  get material(): CertificateMaterial {
    return this.#material;
  }

  get names(): readonly string[] {
    return this.#material.names;
  }

  get certFile(): string | undefined {
    return this.#files?.certFile;
  }

  get lastOutcome(): ReloadOutcome {
    return this.#lastOutcome;
  }

  get keyFile(): string | undefined {
    return this.#files?.keyFile;
  }

  async reload(): Promise<ReloadOutcome> {
    if (this.#files === undefined || this.closed) return 'unchanged';
    this.#reportNow = true;
    if (this.#watcher) {
      await this.#watcher.trigger();
      return this.#lastOutcome;
    }
    return this.#check();
  }

  protected async onClose(): Promise<void> {
    this.#expiry.stop();
    this.#settleTimer?.cancel();
    this.#settleTimer = undefined;
    this.#onClose();
    await this.#watcher?.close();
    this.#watcher = undefined;
  }

  remove(): Promise<void> {
    const closing = this.close();
    const cache = this.#opts.cache;
    if (cache.defaultMaterial?.id === this.#material.id) cache.setDefault(undefined);
    cache.removeCertificate(this.#material.id);
    return closing;
  }

  /** Puts `material` in service (swapping out `previous`), then re-arms the expiry warnings. */
  serve(previous: CertificateMaterial | undefined, source: 'file' | 'memory'): void {
    const { cache, defaultServerName } = this.#opts;
    const material = this.#material;
    cache.add(material, previous ? { replaces: previous.id } : {});
    const isDefault =
      defaultServerName !== undefined
        ? material.names.includes(defaultServerName)
        : cache.defaultMaterial === undefined || (previous !== undefined && cache.defaultMaterial.id === previous.id);
    if (isDefault) cache.setDefault(material);
    this.#log.info(
      { names: material.names, serialNumber: material.serialNumber, notAfter: material.notAfter.toISOString(), certFile: this.certFile, reloaded: previous !== undefined },
      previous ? 'unmanaged certificate reloaded' : 'unmanaged certificate loaded',
    );
    this.#opts.events.emit('cert_loaded', { names: [...material.names], notAfter: material.notAfter, source });
    this.#expiry.start(material, this.certFile);
  }

  async startWatching(): Promise<void> {
    const files = this.#files;
    if (files === undefined || this.closed) return;
    const watcher = new FileWatcher([files.certFile, files.keyFile], {
      clock: this.#opts.clock,
      logger: this.#log,
      ...files.tuning,
      check: async () => {
        await this.#check();
      },
    });
    this.#watcher = watcher;
    await watcher.start();
    // A change between the first read and the watch start would otherwise wait for the re-check timer.
    await watcher.trigger();
  }

  async warnLooseKeyMode(): Promise<void> {
    const keyFile = this.#files?.keyFile;
    if (keyFile === undefined) return;
    const mode = await looseKeyFileMode(keyFile);
    if (mode !== undefined && mode !== this.#keyModeWarned) {
      this.#log.warn({ keyFile, mode }, 'private key file is readable by group or others; restrict it to the owner (chmod 600)');
    }
    this.#keyModeWarned = mode;
  }

  async #check(): Promise<ReloadOutcome> {
    const files = this.#files;
    if (files === undefined || this.closed) return 'unchanged';
    const reportNow = this.#reportNow || this.#watcher === undefined;
    this.#reportNow = false;
    this.#settleTimer?.cancel();
    this.#settleTimer = undefined;
    let cert: Buffer;
    let key: Buffer;
    try {
      cert = await readReloadFile(files.certFile);
      key = await readReloadFile(files.keyFile);
    } catch (error) {
      const seen = `unreadable:${(error as CertificateFileError).path}:${(error as CertificateFileError).errno ?? ''}`;
      return this.#outcome(seen === this.#lastSeen ? 'unchanged' : this.#refuse(error, seen, reportNow));
    }
    const seen = fingerprint(cert, key);
    if (seen === this.#lastSeen || this.closed) {
      this.#suspect = undefined;
      return this.#outcome('unchanged');
    }
    await this.warnLooseKeyMode();
    let material: CertificateMaterial;
    try {
      material = buildMaterial(cert, key, { passphrase: files.passphrase, managed: false, now: this.#opts.clock.now() });
    } catch (error) {
      return this.#outcome(this.#refuse(error, seen, reportNow));
    }
    if (this.closed) return 'unchanged';
    this.#lastSeen = seen;
    this.#suspect = undefined;
    const previous = this.#material;
    if (material.id === previous.id) return this.#outcome('unchanged');
    this.#material = material;
    try {
      this.serve(previous, 'file');
    } catch (error) {
      // The cache refused it (a context that does not build): the previous certificate is still indexed.
      this.#material = previous;
      return this.#outcome(this.#fail(error, seen));
    }
    this.#announceNameChanges(previous, material);
    return this.#outcome('reloaded');
  }

  #outcome(outcome: ReloadOutcome): ReloadOutcome {
    this.#lastOutcome = outcome;
    return outcome;
  }

  /**
   * A refused pair. Seen for the first time by the watcher, it may be a
   * writer caught between replacing the certificate and the key: look again
   * after maxWaitMs and report only if the same content is still there.
   */
  #refuse(error: unknown, seen: string, reportNow: boolean): 'failed' {
    const files = this.#files;
    if (!reportNow && files !== undefined) {
      const now = this.#opts.clock.now();
      if (this.#suspect?.seen !== seen) {
        this.#suspect = { seen, since: now };
        this.#log.debug({ certFile: files.certFile, reason: reloadFailureReason(error) }, 'refused certificate pair; looking again before reporting');
      }
      // Other events (the writer's temp file) may run checks sooner: report only once the settle time has passed.
      const remaining = this.#suspect.since + files.tuning.maxWaitMs - now;
      if (remaining > 0) {
        this.#settleTimer = this.#opts.clock.setTimer(() => {
          this.#settleTimer = undefined;
          void this.#watcher?.trigger();
        }, remaining);
        return 'failed';
      }
    }
    this.#suspect = undefined;
    return this.#fail(error, seen);
  }

  #fail(error: unknown, seen: string): 'failed' {
    this.#lastSeen = seen;
    const reason = reloadFailureReason(error);
    const err = error instanceof Error ? error : new CertificateInvalidError(String(error));
    const { certFile, keyFile } = this.#files ?? {};
    this.#log.error(
      { names: this.#material.names, certFile, keyFile, reason, err: { code: err instanceof CertKeeperError ? err.code : undefined, message: err.message } },
      'certificate reload failed; the previous certificate stays in service',
    );
    this.#opts.events.emit('cert_reload_failed', { names: [...this.#material.names], certFile, keyFile, reason, error: err });
    return 'failed';
  }

  #announceNameChanges(previous: CertificateMaterial, current: CertificateMaterial): void {
    const before = new Set(previous.names);
    const after = new Set(current.names);
    const added = current.names.filter((n) => !before.has(n));
    const removed = previous.names.filter((n) => !after.has(n));
    if (added.length === 0 && removed.length === 0) return;
    const details = { names: [...current.names], previousNames: [...previous.names], added, removed, certFile: this.certFile, keyFile: this.keyFile };
    if (removed.length > 0) this.#log.warn(details, 'reloaded certificate no longer covers some names it served; they are no longer served by it');
    else this.#log.info(details, 'reloaded certificate covers new names');
    this.#opts.events.emit('cert_names_changed', details);
  }
}
