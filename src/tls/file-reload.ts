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
import { resolve } from 'node:path';
import { ClosedError, InvalidOptionError } from '../errors.js';
import { Closable } from '../lifecycle.js';
import type { Logger } from '../logger.js';
import { buildMaterial, type CertificateMaterial } from './certificate-material.js';
import { resolveWatchTuning, type WatchTuning } from './file-watch.js';
import { fingerprint, readReloadFile } from './reload-files.js';
import { UnmanagedCertificate, type ResolvedFileOptions, type UnmanagedCertificatesOptions, type UnmanagedHandle } from './unmanaged-certificate.js';
export { looseKeyFileMode, readReloadFile, reloadFailureReason } from './reload-files.js';
export { UNMANAGED_EXPIRY_WARNINGS_MS } from './expiry-warnings.js';
export type { ReloadOutcome, UnmanagedCertificatesOptions, UnmanagedHandle } from './unmanaged-certificate.js';

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

/** Every unmanaged certificate of one manager. */
export class UnmanagedCertificates extends Closable {
  readonly #opts: UnmanagedCertificatesOptions;
  readonly #log: Logger;
  readonly #handles = new Set<UnmanagedCertificate>();

  constructor(options: UnmanagedCertificatesOptions) {
    super('UnmanagedCertificates');
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
  protected async onClose(): Promise<void> {
    const handles = [...this.#handles];
    this.#handles.clear();
    await Promise.all(handles.map((handle) => handle.close()));
  }

  #assertOpen(): void {
    if (this.closed) throw new ClosedError('CertKeeper');
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
