/**
 * Unmanaged certificates: issued by another tool (certbot, a Kubernetes
 * secret, Vault, an internal PKI), served through the same SNI cache as
 * managed ones, never renewed here.
 *
 * A file-backed certificate is reloaded when its files change. Every new pair
 * is validated in full before it is served (PEM, key match, chain order,
 * validity); a pair that fails keeps the previous certificate in service and
 * is reported (`cert_reload_failed`), and the next change is tried again. The
 * swap itself is one synchronous cache step, so a handshake gets either the
 * old certificate or the new one. Nobody renews these certificates, so their
 * approaching expiry is announced (`cert_expiring`) on timers, not by polling.
 */
import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Clock, TimerHandle } from '../clock.js';
import { CertificateFileError, CertificateInvalidError, CertKeeperError, ClosedError, InvalidOptionError } from '../errors.js';
import type { ReloadFailureReason, TypedEmitter } from '../events.js';
import type { Logger } from '../logger.js';
import { buildMaterial, type CertificateMaterial } from './certificate-material.js';
import type { ContextCache } from './context-cache.js';
import { FileWatcher, resolveWatchTuning, type WatchTuning } from './file-watch.js';

const DAY_MS = 86_400_000;
/** Remaining lifetimes at which an unmanaged certificate's expiry is announced, largest first. */
export const UNMANAGED_EXPIRY_WARNINGS_MS = Object.freeze([7 * DAY_MS, DAY_MS]);

export interface LoadCertificateFilesOptions extends WatchTuning {
  /** Path of the certificate chain (leaf first), PEM. */
  cert: string;
  /** Path of the private key, PEM (PKCS#8, PKCS#1 or SEC1; may be encrypted). */
  key: string;
  /** Decrypts an encrypted key, once per load. */
  passphrase?: string;
  /** Reload when the files change; default true. */
  watch?: boolean;
}

export interface LoadCertificatePemOptions {
  cert: string | Buffer;
  key: string | Buffer;
  passphrase?: string;
}

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
  /** Stops watching and expiry timers; the certificate stays in service. Idempotent. */
  close(): void;
  /** Stops serving the certificate, then close(). */
  remove(): void;
}

export interface UnmanagedCertificatesOptions {
  cache: ContextCache;
  events: Pick<TypedEmitter, 'emit'>;
  logger: Logger;
  clock: Clock;
  /** When set, a certificate covering it becomes the default (clients without SNI); otherwise the first one loaded does, if there is none. */
  defaultServerName?: string | undefined;
}

interface ResolvedFileOptions {
  certFile: string;
  keyFile: string;
  passphrase: string | undefined;
  watch: boolean;
  tuning: Required<WatchTuning>;
}

/** Maps a load failure to the machine-readable reason carried by `cert_reload_failed`. */
export function reloadFailureReason(error: unknown): ReloadFailureReason {
  if (error instanceof CertificateFileError) return 'unreadable';
  if (!(error instanceof CertificateInvalidError)) return 'invalid';
  // The messages are certificate-material.ts's; test/reload covers each one.
  const m = error.message;
  if (/no PEM CERTIFICATE block|of the chain does not parse/.test(m)) return 'certificate_malformed';
  if (/encrypted and no passphrase|could not be decrypted/.test(m)) return 'passphrase';
  if (/private key does not parse/.test(m)) return 'key_malformed';
  if (/does not match the certificate/.test(m)) return 'key_mismatch';
  if (/chain out of order/.test(m)) return 'chain_order';
  if (/expired at/.test(m)) return 'expired';
  if (/not valid before/.test(m)) return 'not_yet_valid';
  if (/names no DNS name/.test(m)) return 'no_names';
  return 'invalid';
}

/** Reads a file for a reload, mapping system errors to CertificateFileError. */
export async function readReloadFile(path: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (error) {
    throw new CertificateFileError(path, (error as NodeJS.ErrnoException).code, { cause: error });
  }
}

/** Group/other permission bits of a key file, when it has any (POSIX only). */
export async function looseKeyFileMode(path: string): Promise<string | undefined> {
  if (process.platform === 'win32') return undefined;
  try {
    const mode = (await stat(path)).mode & 0o777;
    return (mode & 0o077) !== 0 ? `0${mode.toString(8).padStart(3, '0')}` : undefined;
  } catch {
    return undefined;
  }
}

/** Every unmanaged certificate of one manager. */
export class UnmanagedCertificates {
  readonly #opts: UnmanagedCertificatesOptions;
  readonly #log: Logger;
  readonly #handles = new Set<UnmanagedCertificate>();
  #closed = false;

  constructor(options: UnmanagedCertificatesOptions) {
    this.#opts = options;
    this.#log = options.logger.child({ component: 'file-reload' });
  }

  async loadFiles(options: LoadCertificateFilesOptions): Promise<UnmanagedHandle> {
    this.#assertOpen();
    const resolved = resolveFileOptions(options);
    const cert = await readReloadFile(resolved.certFile);
    const key = await readReloadFile(resolved.keyFile);
    const material = buildMaterial(cert, key, { passphrase: resolved.passphrase, managed: false, now: this.#opts.clock.now() });
    this.#assertOpen();
    const handle = new UnmanagedCertificate(this.#opts, this.#log, material, resolved, fingerprint(cert, key), () => this.#handles.delete(handle));
    this.#handles.add(handle);
    await handle.warnLooseKeyMode();
    handle.serve(undefined, 'file');
    if (resolved.watch) await handle.startWatching();
    return handle;
  }

  loadPem(options: LoadCertificatePemOptions): UnmanagedHandle {
    this.#assertOpen();
    if (typeof options !== 'object' || options === null) throw new InvalidOptionError('loadCertificatePem', 'must be an object');
    if (typeof options.cert !== 'string' && !Buffer.isBuffer(options.cert)) throw new InvalidOptionError('cert', 'must be a PEM string or Buffer');
    if (typeof options.key !== 'string' && !Buffer.isBuffer(options.key)) throw new InvalidOptionError('key', 'must be a PEM string or Buffer');
    if (options.passphrase !== undefined && typeof options.passphrase !== 'string') throw new InvalidOptionError('passphrase', 'must be a string');
    const material = buildMaterial(options.cert, options.key, { passphrase: options.passphrase, managed: false, now: this.#opts.clock.now() });
    const handle = new UnmanagedCertificate(this.#opts, this.#log, material, undefined, undefined, () => this.#handles.delete(handle));
    this.#handles.add(handle);
    handle.serve(undefined, 'memory');
    return handle;
  }

  get size(): number {
    return this.#handles.size;
  }

  /** What each unmanaged certificate serves now (for the status page and the CLI). */
  list(): { material: CertificateMaterial; certFile: string | undefined; lastReloadFailed: boolean }[] {
    return [...this.#handles].map((h) => ({ material: h.material, certFile: h.certFile, lastReloadFailed: h.lastOutcome === 'failed' }));
  }

  /** Releases every watcher and timer; certificates stay in the cache (which the manager closes next). */
  close(): void {
    this.#closed = true;
    for (const handle of [...this.#handles]) handle.close();
    this.#handles.clear();
  }

  #assertOpen(): void {
    if (this.#closed) throw new ClosedError('CertKeeper');
  }
}

function resolveFileOptions(options: LoadCertificateFilesOptions): ResolvedFileOptions {
  if (typeof options !== 'object' || options === null) throw new InvalidOptionError('loadCertificateFiles', 'must be an object');
  if (typeof options.cert !== 'string' || options.cert === '') throw new InvalidOptionError('cert', 'must be a file path');
  if (typeof options.key !== 'string' || options.key === '') throw new InvalidOptionError('key', 'must be a file path');
  if (options.passphrase !== undefined && typeof options.passphrase !== 'string') throw new InvalidOptionError('passphrase', 'must be a string');
  if (options.watch !== undefined && typeof options.watch !== 'boolean') throw new InvalidOptionError('watch', 'must be a boolean');
  return Object.freeze({
    certFile: resolve(options.cert),
    keyFile: resolve(options.key),
    passphrase: options.passphrase,
    watch: options.watch !== false,
    tuning: resolveWatchTuning(options, ''),
  });
}

function fingerprint(cert: Buffer, key: Buffer): string {
  return createHash('sha256').update(cert).update('\0').update(key).digest('hex');
}

class UnmanagedCertificate implements UnmanagedHandle {
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
  #expiryTimer: TimerHandle | undefined;
  /** Smallest threshold already announced for the current certificate. */
  #warnedBelow = Number.POSITIVE_INFINITY;
  #closed = false;

  constructor(
    options: UnmanagedCertificatesOptions,
    log: Logger,
    material: CertificateMaterial,
    files: ResolvedFileOptions | undefined,
    seen: string | undefined,
    onClose: () => void,
  ) {
    this.#opts = options;
    this.#log = log;
    this.#material = material;
    this.#files = files;
    this.#lastSeen = seen;
    this.#onClose = onClose;
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
    if (this.#files === undefined || this.#closed) return 'unchanged';
    this.#reportNow = true;
    if (this.#watcher) {
      await this.#watcher.trigger();
      return this.#lastOutcome;
    }
    return this.#check();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#watcher?.close();
    this.#watcher = undefined;
    this.#expiryTimer?.cancel();
    this.#expiryTimer = undefined;
    this.#settleTimer?.cancel();
    this.#settleTimer = undefined;
    this.#onClose();
  }

  remove(): void {
    this.close();
    const cache = this.#opts.cache;
    if (cache.defaultMaterial?.id === this.#material.id) cache.setDefault(undefined);
    cache.removeCertificate(this.#material.id);
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
    this.#warnedBelow = Number.POSITIVE_INFINITY;
    this.#scheduleExpiryWarning();
  }

  async startWatching(): Promise<void> {
    const files = this.#files;
    if (files === undefined || this.#closed) return;
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
    if (files === undefined || this.#closed) return 'unchanged';
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
    if (seen === this.#lastSeen || this.#closed) {
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
    if (this.#closed) return 'unchanged';
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

  /**
   * Announces the tightest threshold already crossed (once per certificate),
   * then sleeps until the next one. A timer that fires early (the system
   * clock caps long delays) just re-evaluates.
   */
  #scheduleExpiryWarning(): void {
    this.#expiryTimer?.cancel();
    this.#expiryTimer = undefined;
    if (this.#closed) return;
    const { clock } = this.#opts;
    const material = this.#material;
    const remaining = material.notAfter.getTime() - clock.now();
    const crossed = UNMANAGED_EXPIRY_WARNINGS_MS.filter((threshold) => remaining < threshold);
    const tightest = crossed[crossed.length - 1];
    if (tightest !== undefined && tightest < this.#warnedBelow && remaining > 0) {
      this.#warnedBelow = tightest;
      const details = { names: [...material.names], notAfter: material.notAfter, remainingMs: remaining, managed: false };
      this.#log.warn(
        { names: details.names, notAfter: material.notAfter.toISOString(), remainingMs: remaining, certFile: this.certFile },
        'unmanaged certificate expires soon and is not renewed by certkeeper; replace it',
      );
      this.#opts.events.emit('cert_expiring', details);
    }
    const next = UNMANAGED_EXPIRY_WARNINGS_MS.find((threshold) => remaining >= threshold);
    if (remaining <= 0) {
      this.#log.error({ names: material.names, notAfter: material.notAfter.toISOString(), certFile: this.certFile }, 'unmanaged certificate has expired');
      return;
    }
    // Next threshold, or the expiry itself once every threshold is behind.
    const wait = next !== undefined ? remaining - next : remaining;
    this.#expiryTimer = clock.setTimer(() => this.#scheduleExpiryWarning(), Math.max(1, wait));
  }
}
