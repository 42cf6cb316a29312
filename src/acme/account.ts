/**
 * One ACME account per (directory, email), kept in storage and reused.
 *
 * Registration runs under a storage lock and storage is read again once the
 * lock is held, so processes sharing storage never register two accounts
 * (certmagic registers one per name when many names start at once).
 */
import { generateKeyPair } from 'node:crypto';
import { promisify } from 'node:util';
import { AcmeProblemError, EabRequiredError, TermsNotAgreedError, StorageError, throwIfAborted } from '../errors.js';
import type { Logger } from '../logger.js';
import { accountKeys, accountLockName } from '../storage/layout.js';
import { put, writeUnderLock } from '../storage/fenced.js';
import { loadIfExists } from '../storage/load-if-exists.js';
import type { Storage } from '../storage/types.js';
import type { AcmeConnection } from './connection.js';
import { DEFAULT_ACCOUNT_LOCK_TIMEOUT_MS } from '../defaults.js';
export { DEFAULT_ACCOUNT_LOCK_TIMEOUT_MS };

const generateKeyPairAsync = promisify(generateKeyPair);


export interface ExternalAccountBinding {
  kid: string;
  /** base64url HMAC key. Never logged. */
  hmacKey: string;
}

export interface StoredAccount {
  keyPem: string;
  url: string;
}

/** The sidecar JSON stored beside the account key. */
export interface AccountMetadata {
  url: string;
  directoryUrl: string;
  email?: string | undefined;
  createdAt: string;
}

export interface AccountContext {
  storage: Storage;
  issuerKey: string;
  directoryUrl: string;
  email: string | undefined;
  agreeToTerms: boolean;
  externalAccountBinding: ExternalAccountBinding | undefined;
  logger: Logger;
  lockTimeoutMs?: number | undefined;
}

/** A fresh ECDSA P-256 account key, PKCS#8 PEM. */
export async function createAccountKeyPem(): Promise<string> {
  const { privateKey } = await generateKeyPairAsync('ec', { namedCurve: 'P-256' });
  return privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
}

/** The stored account, or undefined; a key without metadata is returned as `{ keyPem }` so it is reused. */
export async function loadAccount(
  storage: Storage,
  issuerKey: string,
  email: string | undefined,
): Promise<{ keyPem?: string; url?: string }> {
  const keys = accountKeys(issuerKey, email);
  const [key, meta] = await Promise.all([loadIfExists(storage, keys.key), loadIfExists(storage, keys.meta)]);
  const out: { keyPem?: string; url?: string } = {};
  if (key) out.keyPem = key.toString('utf8');
  if (meta) {
    try {
      const parsed = JSON.parse(meta.toString('utf8')) as Partial<AccountMetadata>;
      if (typeof parsed.url === 'string') out.url = parsed.url;
    } catch (error) {
      throw new StorageError(`Account metadata at ${keys.meta} is not valid JSON`, { cause: error });
    }
  }
  return out;
}

/**
 * Returns the stored account for this directory and email, registering one
 * when there is none. `connect` builds a connection signed with a given key.
 */
export async function ensureAccount(
  ctx: AccountContext,
  connect: (keyPem: string, accountUrl?: string) => AcmeConnection,
  signal?: AbortSignal,
  /** An account URL the CA no longer knows (accountDoesNotExist): register the stored key again. */
  staleUrl?: string,
): Promise<StoredAccount> {
  const found = await loadAccount(ctx.storage, ctx.issuerKey, ctx.email);
  if (found.keyPem && found.url && found.url !== staleUrl) return { keyPem: found.keyPem, url: found.url };

  // Checked before taking the lock: these need no storage and fail fast.
  const candidateKeyPem = found.keyPem ?? (await createAccountKeyPem());
  const conn = connect(candidateKeyPem);
  const directory = await conn.directory(signal);
  if (!ctx.agreeToTerms) throw new TermsNotAgreedError(ctx.directoryUrl, directory.meta?.termsOfService);
  if (directory.meta?.externalAccountRequired === true && !ctx.externalAccountBinding) {
    throw new EabRequiredError(ctx.directoryUrl);
  }

  const lockName = accountLockName(ctx.issuerKey, ctx.email);
  await ctx.storage.lock(lockName, { signal, timeoutMs: ctx.lockTimeoutMs ?? DEFAULT_ACCOUNT_LOCK_TIMEOUT_MS });
  try {
    // Another process may have registered while this one waited for the lock.
    const again = await loadAccount(ctx.storage, ctx.issuerKey, ctx.email);
    if (again.keyPem && again.url && again.url !== staleUrl) {
      ctx.logger.debug({ email: ctx.email ?? null }, 'ACME account registered by another holder, reusing it');
      return { keyPem: again.keyPem, url: again.url };
    }
    throwIfAborted(signal);
    if (again.keyPem && again.keyPem !== candidateKeyPem) {
      return await register(ctx, again.keyPem, false, connect(again.keyPem), signal);
    }
    return await register(ctx, candidateKeyPem, again.keyPem === undefined, conn, signal);
  } finally {
    await ctx.storage.unlock(lockName).catch((error: unknown) => {
      ctx.logger.warn({ err: error, lock: lockName }, 'could not release account lock');
    });
  }
}

async function register(
  ctx: AccountContext,
  keyPem: string,
  storeKey: boolean,
  conn: AcmeConnection,
  signal: AbortSignal | undefined,
): Promise<StoredAccount> {
  const keys = accountKeys(ctx.issuerKey, ctx.email);
  if (storeKey) {
    // The key is stored first: if the process dies after the CA created the
    // account, the next attempt signs with the same key and gets the same account back.
    await writeUnderLock(ctx.storage, accountLockName(ctx.issuerKey, ctx.email), [put(keys.key, keyPem)]);
  }
  const directory = await conn.directory(signal);
  const payload: Record<string, unknown> = { termsOfServiceAgreed: true };
  if (ctx.email) payload.contact = [`mailto:${ctx.email}`];
  const resp = await conn.post(directory.newAccount, payload, {
    ok: [200, 201],
    what: 'newAccount',
    kid: false,
    eab: ctx.externalAccountBinding !== undefined,
    signal,
  });
  const location = resp.headers.location;
  if (typeof location !== 'string' || location === '') {
    throw new AcmeProblemError({ type: 'about:blank', status: resp.status, detail: 'newAccount answered without a Location header' });
  }
  const meta: AccountMetadata = {
    url: location,
    directoryUrl: ctx.directoryUrl,
    email: ctx.email,
    createdAt: new Date().toISOString(),
  };
  await writeUnderLock(ctx.storage, accountLockName(ctx.issuerKey, ctx.email), [put(keys.meta, JSON.stringify(meta, null, 2))]);
  ctx.logger.info({ email: ctx.email ?? null, account: location, existing: resp.status === 200 }, 'ACME account registered');
  return { keyPem, url: location };
}
