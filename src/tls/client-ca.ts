/**
 * The bundle of CA certificates an mTLS server trusts for client
 * certificates, read from a file and reloaded when it changes.
 *
 * Node verifies a client certificate against the `ca` of the secure context
 * the handshake uses, so a new bundle is applied as a context option of the
 * cache (every context rebuilt off the handshake path; new handshakes use the
 * new bundle at once). A bundle that does not validate (a block that is not a
 * CA certificate, a truncated file) keeps the previous one in force. Rotating
 * a CA with overlap (old + new, then new only) never rejects a client that is
 * valid under the bundle in force at its handshake.
 */
import { X509Certificate, createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type tls from 'node:tls';
import type { Clock, TimerHandle } from '../clock.js';
import { CertificateFileError, CertificateInvalidError, CertKeeperError, ClosedError, InvalidOptionError } from '../errors.js';
import type { ReloadFailureReason, TypedEmitter } from '../events.js';
import { Closable } from '../lifecycle.js';
import type { Logger } from '../logger.js';
import type { ContextCache } from './context-cache.js';
import { FileWatcher, resolveWatchTuning, type WatchTuning } from './file-watch.js';
import { readReloadFile, reloadFailureReason } from './reload-files.js';

export interface ClientCaOptions extends WatchTuning {
  /** PEM file with one or more CA certificates. */
  file: string;
  /** Reload when the file changes; default true. */
  watch?: boolean;
}

/** Server options accepted by keeper.tlsOptions(): Node's, plus a watched client-CA bundle (instead of `ca`). */
export type TlsOptionsWithClientCa = tls.TlsOptions & { clientCA?: ClientCaOptions | undefined };

export interface ParsedClientCaBundle {
  /** The CERTIFICATE blocks, normalised (one per line group). */
  pem: string;
  subjects: string[];
}

const PEM_BEGIN = /-----BEGIN ([A-Z0-9 ]+)-----/g;
const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** Checks a client-CA bundle: at least one block, every block a complete CERTIFICATE with CA:TRUE basic constraints. */
export function parseClientCaBundle(input: string | Buffer): ParsedClientCaBundle {
  const text = input.toString();
  const begins = [...text.matchAll(PEM_BEGIN)];
  const blocks = text.match(PEM_CERTIFICATE) ?? [];
  if (begins.length === 0) throw new BundleError('certificate_malformed', 'no PEM CERTIFICATE block found in the client-CA bundle (empty or truncated file?)');
  const other = begins.find((m) => m[1] !== 'CERTIFICATE');
  if (other) throw new BundleError('certificate_malformed', `the client-CA bundle holds a ${other[1]} block; only CERTIFICATE blocks are allowed`);
  if (blocks.length !== begins.length) throw new BundleError('certificate_malformed', 'a PEM block of the client-CA bundle is truncated');
  const subjects = blocks.map((block, index) => {
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(block);
    } catch (error) {
      throw new BundleError('certificate_malformed', `certificate ${index + 1} of the client-CA bundle does not parse`, { cause: error });
    }
    if (!cert.ca) throw new BundleError('not_ca', `certificate ${index + 1} of the client-CA bundle (${oneLine(cert.subject)}) is not a CA certificate (basic constraints CA:TRUE missing)`);
    return oneLine(cert.subject);
  });
  return { pem: `${blocks.join('\n')}\n`, subjects };
}

/** A refused bundle: a CertificateInvalidError (one code for callers) that knows its reason. */
class BundleError extends CertificateInvalidError {
  readonly reason: ReloadFailureReason;
  constructor(reason: ReloadFailureReason, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.reason = reason;
    this.name = 'CertificateInvalidError';
  }
}

function oneLine(subject: string): string {
  return subject.split('\n').join(', ');
}

function failureReason(error: unknown): ReloadFailureReason {
  return error instanceof BundleError ? error.reason : reloadFailureReason(error);
}

export interface ClientCaBundlesOptions {
  cache: ContextCache;
  events: Pick<TypedEmitter, 'emit'>;
  logger: Logger;
  clock: Clock;
}

interface ResolvedClientCa {
  file: string;
  watch: boolean;
  tuning: Required<WatchTuning>;
}

/**
 * The manager's client-CA bundle. One cache holds one set of context
 * options, so one bundle is in force: a tlsOptions() call naming another
 * file replaces the watched one.
 */
export class ClientCaBundles extends Closable {
  readonly #opts: ClientCaBundlesOptions;
  readonly #log: Logger;
  #active: WatchedBundle | undefined;

  constructor(options: ClientCaBundlesOptions) {
    super('ClientCaBundles');
    this.#opts = options;
    this.#log = options.logger.child({ component: 'client-ca' });
  }

  /**
   * Returns the user's options with `clientCA` replaced by `ca` (the bundle
   * read now, synchronously, since server options are built synchronously),
   * and starts watching the file. Throws CertificateFileError or
   * CertificateInvalidError when the bundle cannot be used.
   */
  apply(userOptions: TlsOptionsWithClientCa): tls.TlsOptions {
    if (typeof userOptions !== 'object' || userOptions === null) return userOptions;
    const { clientCA, ...rest } = userOptions;
    if (clientCA === undefined) return rest;
    if (this.closed) throw new ClosedError('CertKeeper');
    if (rest.ca !== undefined) throw new InvalidOptionError('clientCA', 'give either ca or clientCA, not both');
    const resolved = resolveClientCa(clientCA);
    if (this.#active?.file === resolved.file) return { ...rest, ca: this.#active.pem };

    let bytes: Buffer;
    try {
      bytes = readFileSync(resolved.file);
    } catch (error) {
      throw new CertificateFileError(resolved.file, (error as NodeJS.ErrnoException).code, { cause: error });
    }
    const parsed = parseClientCaBundle(bytes);
    // The replaced bundle's watch stops in the background; its file is no longer read.
    void this.#active?.close();
    const bundle = new WatchedBundle(this.#opts, this.#log, resolved, parsed, digest(bytes));
    this.#active = bundle;
    this.#opts.events.emit('client_ca_loaded', { file: resolved.file, certificates: parsed.subjects.length, subjects: parsed.subjects });
    this.#log.info({ file: resolved.file, certificates: parsed.subjects.length }, 'client-CA bundle loaded');
    if (resolved.watch) bundle.startWatching();
    return { ...rest, ca: parsed.pem };
  }

  /** Re-reads the bundle now; resolves false when there is none or it was refused. */
  reload(): Promise<boolean> {
    return this.#active?.check() ?? Promise.resolve(false);
  }

  protected async onClose(): Promise<void> {
    const active = this.#active;
    this.#active = undefined;
    await active?.close();
  }
}

function resolveClientCa(options: ClientCaOptions): ResolvedClientCa {
  if (typeof options !== 'object' || options === null) throw new InvalidOptionError('clientCA', 'must be an object { file, watch? }');
  if (typeof options.file !== 'string' || options.file === '') throw new InvalidOptionError('clientCA.file', 'must be a file path');
  if (options.watch !== undefined && typeof options.watch !== 'boolean') throw new InvalidOptionError('clientCA.watch', 'must be a boolean');
  return Object.freeze({ file: resolve(options.file), watch: options.watch !== false, tuning: resolveWatchTuning(options, 'clientCA.') });
}

function digest(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

class WatchedBundle extends Closable {
  readonly #opts: ClientCaBundlesOptions;
  readonly #log: Logger;
  readonly #config: ResolvedClientCa;
  #pem: string;
  #lastSeen: string;
  #watcher: FileWatcher | undefined;
  /** A refused bundle seen once: reported only if still there after maxWaitMs (a writer may be mid-write). */
  #suspect: { seen: string; since: number } | undefined;
  #settleTimer: TimerHandle | undefined;
  #reportNow = false;

  constructor(options: ClientCaBundlesOptions, log: Logger, config: ResolvedClientCa, parsed: ParsedClientCaBundle, seen: string) {
    super('WatchedBundle');
    this.#opts = options;
    this.#log = log;
    this.#config = config;
    this.#pem = parsed.pem;
    this.#lastSeen = seen;
  }

  get file(): string {
    return this.#config.file;
  }

  get pem(): string {
    return this.#pem;
  }

  startWatching(): void {
    const watcher = new FileWatcher([this.#config.file], {
      clock: this.#opts.clock,
      logger: this.#log,
      ...this.#config.tuning,
      check: async () => {
        await this.#check();
      },
    });
    this.#watcher = watcher;
    // A change between the synchronous read and the watch start is caught by the first check.
    watcher
      .start()
      .then(() => watcher.trigger())
      .catch((error: unknown) => this.#log.error({ file: this.#config.file, err: error }, 'client-CA watch failed to start'));
  }

  async check(): Promise<boolean> {
    this.#reportNow = true;
    if (this.#watcher) {
      await this.#watcher.trigger();
      return !this.closed;
    }
    return this.#check();
  }

  protected async onClose(): Promise<void> {
    this.#settleTimer?.cancel();
    this.#settleTimer = undefined;
    await this.#watcher?.close();
    this.#watcher = undefined;
  }

  async #check(): Promise<boolean> {
    if (this.closed) return false;
    const file = this.#config.file;
    const reportNow = this.#reportNow || this.#watcher === undefined;
    this.#reportNow = false;
    this.#settleTimer?.cancel();
    this.#settleTimer = undefined;
    let bytes: Buffer;
    try {
      bytes = await readReloadFile(file);
    } catch (error) {
      const seen = `unreadable:${(error as CertificateFileError).errno ?? ''}`;
      if (seen !== this.#lastSeen) this.#refuse(error, seen, reportNow);
      return false;
    }
    const seen = digest(bytes);
    if (seen === this.#lastSeen || this.closed) {
      this.#suspect = undefined;
      return false;
    }
    let parsed: ParsedClientCaBundle;
    try {
      parsed = parseClientCaBundle(bytes);
    } catch (error) {
      this.#refuse(error, seen, reportNow);
      return false;
    }
    const cache = this.#opts.cache;
    if (cache.contextOptions.ca !== this.#pem) {
      // Someone set other context options since (a tlsOptions() call without clientCA): not ours to change.
      this.#log.debug({ file }, 'client-CA bundle changed but the cache no longer uses it; ignored');
      this.#lastSeen = seen;
      return false;
    }
    try {
      // From the return on, new handshakes verify against the new bundle.
      cache.setContextOptions({ ...cache.contextOptions, ca: parsed.pem }).catch((error: unknown) => this.#log.error({ err: error }, 'TLS context rebuild failed'));
    } catch (error) {
      this.#fail(error, seen);
      return false;
    }
    this.#lastSeen = seen;
    this.#suspect = undefined;
    this.#pem = parsed.pem;
    this.#log.info({ file, certificates: parsed.subjects.length }, 'client-CA bundle reloaded');
    this.#opts.events.emit('client_ca_loaded', { file, certificates: parsed.subjects.length, subjects: parsed.subjects });
    return true;
  }

  #refuse(error: unknown, seen: string, reportNow: boolean): void {
    if (!reportNow) {
      const now = this.#opts.clock.now();
      if (this.#suspect?.seen !== seen) this.#suspect = { seen, since: now };
      // Other events may run checks sooner: report only once the settle time has passed.
      const remaining = this.#suspect.since + this.#config.tuning.maxWaitMs - now;
      if (remaining > 0) {
        this.#settleTimer = this.#opts.clock.setTimer(() => {
          this.#settleTimer = undefined;
          void this.#watcher?.trigger();
        }, remaining);
        return;
      }
    }
    this.#suspect = undefined;
    this.#fail(error, seen);
  }

  #fail(error: unknown, seen: string): void {
    this.#lastSeen = seen;
    const reason = failureReason(error);
    const err = error instanceof Error ? error : new CertificateInvalidError(String(error));
    this.#log.error(
      { caFile: this.#config.file, reason, err: { code: err instanceof CertKeeperError ? err.code : undefined, message: err.message } },
      'client-CA bundle reload failed; the previous bundle stays in force',
    );
    this.#opts.events.emit('cert_reload_failed', { names: [], caFile: this.#config.file, reason, error: err });
  }
}
