/**
 * Reading certificate files for a reload, shared by unmanaged certificates
 * and client-CA bundles: system errors become CertificateFileError, refusals
 * get the machine-readable reason `cert_reload_failed` carries.
 */
import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { CertificateFileError, CertificateInvalidError } from '../errors.js';
import type { ReloadFailureReason } from '../events.js';

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

/** Content fingerprint of a certificate/key pair, to tell a new pair from one already tried. */
export function fingerprint(cert: Buffer, key: Buffer): string {
  return createHash('sha256').update(cert).update('\0').update(key).digest('hex');
}
