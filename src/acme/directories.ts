import { InvalidOptionError } from '../errors.js';

/** Well-known ACME directories, selectable with the `ca` option. */
export const DIRECTORY_PRESETS = Object.freeze({
  letsencrypt: 'https://acme-v02.api.letsencrypt.org/directory',
  'letsencrypt-staging': 'https://acme-staging-v02.api.letsencrypt.org/directory',
  zerossl: 'https://acme.zerossl.com/v2/DV90',
  google: 'https://dv.acme-v02.api.pki.goog/directory',
  'google-staging': 'https://dv.acme-v02.test-api.pki.goog/directory',
} as const);

export type DirectoryPreset = keyof typeof DIRECTORY_PRESETS;

export function isDirectoryPreset(value: string): value is DirectoryPreset {
  return Object.hasOwn(DIRECTORY_PRESETS, value);
}

/**
 * Resolves a preset name or an https URL to a directory URL. Plain http is
 * refused: the directory is where the CA's other URLs and terms come from.
 */
export function resolveDirectoryUrl(value: unknown, option = 'directoryUrl'): string {
  if (typeof value !== 'string' || value.length === 0) {
    throw new InvalidOptionError(option, 'must be a preset name or an https URL');
  }
  if (isDirectoryPreset(value)) return DIRECTORY_PRESETS[value];
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new InvalidOptionError(
      option,
      `must be an https URL or one of ${Object.keys(DIRECTORY_PRESETS).join(', ')}`,
    );
  }
  if (url.protocol !== 'https:') throw new InvalidOptionError(option, 'must use https');
  if (url.username || url.password) throw new InvalidOptionError(option, 'must not contain credentials');
  return url.href;
}

/** The directory document (RFC 8555 section 7.1.1), as the protocol code reads it. */
export interface AcmeDirectory {
  newNonce: string;
  newAccount: string;
  newOrder: string;
  revokeCert?: string;
  keyChange?: string;
  renewalInfo?: string;
  meta?: {
    termsOfService?: string;
    website?: string;
    caaIdentities?: string[];
    externalAccountRequired?: boolean;
    profiles?: Record<string, string>;
  };
}
