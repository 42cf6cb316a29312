/**
 * Where things live in storage. Every key certkeeper writes is built here, from
 * components passed through safeKeyComponent, so no user-controlled string can
 * add a path segment.
 *
 *   certificates/<issuer>/<name>/<name>.crt|.key|.json   (+ <name>.pending while a new set is written,
 *                                                         <name>.probe while checking, before an order, that it can be)
 *   acme/<issuer>/users/<email>/<email>.key|.json
 *   acme/<issuer>/challenge_tokens/<identifier>/<token>.json
 *   backoff/<name>.json                                    (a failing name's backoff; see renewal/failure-state.ts)
 *   locks/<lock name>                                      (file storage only)
 */
import { InvalidStorageKeyError } from '../errors.js';

/**
 * Turns an arbitrary string into one safe key component: lowercase, `*` ->
 * `wildcard_`, every character outside [a-z0-9_@.-] -> `_`. The result is then
 * checked: `.`/`..` and empty components are rejected (sanitising first and
 * checking after closes certmagic's `./.` gap).
 */
export function safeKeyComponent(input: string): string {
  const out = input
    .trim()
    .toLowerCase()
    .replaceAll('*', 'wildcard_')
    .replace(/[^a-z0-9_@.-]/g, '_');
  if (out === '' || out === '.' || out === '..' || /^\.+$/.test(out)) {
    throw new InvalidStorageKeyError(input, 'not usable as a key component');
  }
  return out;
}

/** Issuer key from a directory URL: host and path, `/` -> `-` (certmagic's convention). */
export function issuerKeyFromDirectoryUrl(directoryUrl: string): string {
  const url = new URL(directoryUrl);
  const hostPath = `${url.host}${url.pathname}`.replace(/\/+$/, '').replaceAll('/', '-');
  return safeKeyComponent(hostPath);
}

export interface CertificateKeys {
  /** Folder holding the set. */
  prefix: string;
  cert: string;
  key: string;
  meta: string;
  /** Write-ahead copy of a set being stored; its presence means "roll forward". */
  pending: string;
  /** A short-lived value written before ordering, to prove the set can be stored here. */
  probe: string;
}

export function certificateKeys(issuerKey: string, certName: string): CertificateKeys {
  const issuer = safeKeyComponent(issuerKey);
  const name = safeKeyComponent(certName);
  const prefix = `certificates/${issuer}/${name}`;
  return {
    prefix,
    cert: `${prefix}/${name}.crt`,
    key: `${prefix}/${name}.key`,
    meta: `${prefix}/${name}.json`,
    pending: `${prefix}/${name}.pending`,
    probe: `${prefix}/${name}.probe`,
  };
}

export function certificatesPrefix(issuerKey?: string): string {
  return issuerKey === undefined ? 'certificates' : `certificates/${safeKeyComponent(issuerKey)}`;
}

export interface AccountKeys {
  prefix: string;
  key: string;
  meta: string;
}

export function accountKeys(issuerKey: string, email: string | undefined): AccountKeys {
  const user = safeKeyComponent(email && email.length > 0 ? email : 'default');
  const prefix = `acme/${safeKeyComponent(issuerKey)}/users/${user}`;
  return { prefix, key: `${prefix}/${user}.key`, meta: `${prefix}/${user}.json` };
}

export function challengeTokenKey(issuerKey: string, identifier: string, token: string): string {
  return `acme/${safeKeyComponent(issuerKey)}/challenge_tokens/${safeKeyComponent(identifier)}/${safeKeyComponent(token)}.json`;
}

/** Lock names: one per certificate name (any issuer), one per account. */
export function certificateLockName(certName: string): string {
  return `issue_cert_${safeKeyComponent(certName)}`;
}

export function accountLockName(issuerKey: string, email: string | undefined): string {
  return `account_${safeKeyComponent(issuerKey)}_${safeKeyComponent(email && email.length > 0 ? email : 'default')}`;
}

/**
 * The internal CA's files: internal/<name>/root.crt|root.key|intermediate.crt|intermediate.key.
 * Each `.key` value holds the key AND its certificate (one atomic write, so a
 * crash never pairs a key with the wrong certificate); `.crt` is a copy of the
 * certificate alone, for trust commands.
 */
export interface InternalCaKeys {
  prefix: string;
  rootCert: string;
  rootKey: string;
  intermediateCert: string;
  intermediateKey: string;
}

export function internalCaKeys(caName: string): InternalCaKeys {
  const prefix = `internal/${safeKeyComponent(caName)}`;
  return {
    prefix,
    rootCert: `${prefix}/root.crt`,
    rootKey: `${prefix}/root.key`,
    intermediateCert: `${prefix}/intermediate.crt`,
    intermediateKey: `${prefix}/intermediate.key`,
  };
}

export function internalCaLockName(caName: string): string {
  return `internal_ca_${safeKeyComponent(caName)}`;
}

/**
 * A name's failure state (backoff, last error, finality), kept for every
 * name whether or not it has a certificate: backoff/<name>.json.
 */
export function failureStateKey(certName: string): string {
  return `backoff/${safeKeyComponent(certName)}.json`;
}
