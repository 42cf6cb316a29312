/** Turns CLI settings into library objects: storage, keeper options, the configured issuer's storage key. */
import { readFileSync } from 'node:fs';
import { resolveDirectoryUrl } from '../acme/directories.js';
import type { CertKeeperOptions } from '../config/index.js';
import type { NotifyOptions } from '../notify/options.js';
import { InvalidOptionError } from '../errors.js';
import { DEFAULT_INTERNAL_CA_NAME } from '../issuers/internal.js';
import type { Logger } from '../logger.js';
import type { Storage } from '../storage/types.js';
import { redactStorageUrl, storageFromUrl } from '../storage/url.js';
import { issuerKeyFromDirectoryUrl } from '../storage/layout.js';
import { dns01From } from './dns.js';
import { notifyOptionsFrom } from './notify-settings.js';
import type { CliSettings } from './settings.js';

/**
 * The storage of `--storage` (a directory or a storage URL). Commands that only
 * read pass `existing`: a directory that does not exist is then an error, so a
 * typo is not reported as an empty store.
 */
export async function openStorage(settings: CliSettings, logger: Logger, options: { existing?: boolean } = {}): Promise<Storage> {
  return storageFromUrl(settings.storage, { logger, requireExisting: options.existing === true });
}

/** The storage as it may be printed: a directory, or the URL without its credentials. */
export function storageLabel(settings: CliSettings): string {
  return redactStorageUrl(settings.storage);
}

/** PEM text of `--ca-root`, read once. */
export function caCertificates(settings: CliSettings): string[] {
  if (settings.caRoot === undefined) return [];
  let pem: string;
  try {
    pem = readFileSync(settings.caRoot, 'utf8');
  } catch (error) {
    throw new InvalidOptionError('--ca-root', `cannot read ${settings.caRoot}: ${(error as Error).message}`, { cause: error });
  }
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw new InvalidOptionError('--ca-root', `${settings.caRoot} holds no PEM certificate`);
  return [pem];
}

/** The ACME directory URL of `--ca` (a preset name or an https URL). */
export function directoryUrl(settings: CliSettings): string {
  return resolveDirectoryUrl(settings.ca, '--ca');
}

/** The storage folder name of the configured issuer (certificates/<issuer key>/...). */
export function configuredIssuerKey(settings: CliSettings): string {
  return settings.issuer === 'internal' ? `internal-${DEFAULT_INTERNAL_CA_NAME}` : issuerKeyFromDirectoryUrl(directoryUrl(settings));
}

/** Options for a CertKeeper doing one CLI command: the CLI has no server, so it opens its own challenge listeners. */
export function keeperOptions(settings: CliSettings, storage: Storage, logger: Logger): CertKeeperOptions {
  return {
    storage,
    logger,
    ca: settings.ca,
    caCertificates: caCertificates(settings),
    agreeToTerms: settings.agreeToTerms,
    ...(settings.email !== undefined ? { email: settings.email } : {}),
    ...(settings.keyType !== undefined ? { keyType: settings.keyType } : {}),
    ...(settings.issuer === 'internal' ? { issuers: [{ type: 'internal' as const }] } : {}),
    ...notifyOption(settings),
    challenges: {
      http01: { port: settings.httpPort, host: settings.httpHost, listener: true },
      tlsAlpn01: { port: settings.tlsAlpnPort, host: settings.tlsAlpnHost, listener: true },
      ...(settings.dns !== undefined ? { dns01: dns01From(settings.dns, logger) } : {}),
    },
  };
}

/** The library's `notify` option of the notify setting (its secret read now), or nothing. */
function notifyOption(settings: CliSettings): { notify?: NotifyOptions } {
  const notify = notifyOptionsFrom(settings.notify);
  return notify !== undefined ? { notify } : {};
}
