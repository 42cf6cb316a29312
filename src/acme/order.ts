/**
 * One ACME order, from newOrder to the downloaded chain: authorizations in
 * parallel through the solvers, finalize with the caller's CSR, preferred chain.
 */
import type { X509Certificate } from 'node:crypto';
import { sleep, type Clock } from '../clock.js';
import {
  AbortedError,
  AcmeOrderError,
  CertKeeperError,
  ChallengeFailedError,
  NoSolverError,
  throwIfAborted,
} from '../errors.js';
import type { Logger } from '../logger.js';
import type { Identifier } from '../names.js';
import { CHALLENGE_TYPES, type ChallengeContext, type ChallengeType, type Solver } from '../challenges/types.js';
import { alternateLinks, assertLeafMatchesCsr, parseChainPem, selectPreferredChain, type ParsedChain } from './chain.js';
import type { AcmeConnection } from './connection.js';
import type { AcmeDirectory } from './directories.js';
import { isProblem, parseRetryAfter, problemFromDocument, type RawResponse } from './problem.js';
import { withProfiles } from './profiles.js';
import { isProfileName } from '../validate.js';
import { DEFAULT_MAX_POLL_INTERVAL_MS, DEFAULT_ORDER_TIMEOUT_MS, DEFAULT_POLL_INTERVAL_MS } from '../defaults.js';
export { DEFAULT_POLL_INTERVAL_MS, DEFAULT_MAX_POLL_INTERVAL_MS, DEFAULT_ORDER_TIMEOUT_MS };

const POLL_BACKOFF_FACTOR = 1.5;
/** Deactivation after a failure is best effort: a CA that stopped answering must not hold the order's error back. */
export const DEACTIVATE_TIMEOUT_MS = 5_000;

export interface OrderContext {
  conn: AcmeConnection;
  directory: AcmeDirectory;
  issuerKey: string;
  solvers: Readonly<Partial<Record<ChallengeType, Solver>>>;
  challengePreference: readonly ChallengeType[];
  preferredChain: string | undefined;
  clock: Clock;
  logger: Logger;
  orderTimeoutMs: number;
  pollIntervalMs: number;
  maxPollIntervalMs: number;
}

export interface OrderRequest {
  identifiers: readonly Identifier[];
  /** DER or PEM CSR. */
  csr: Buffer;
  /** ARI certificate ID of the certificate being replaced; sent only when the directory has renewalInfo. */
  replaces?: string | undefined;
  /** Profiles to try in order (see profileCandidates); `undefined` in it, or no list, orders without one. */
  profiles?: readonly (string | undefined)[] | undefined;
  signal?: AbortSignal | undefined;
}

export interface OrderResult {
  chainPem: string;
  /** chainPem's certificates, parsed once here. */
  certificates: readonly X509Certificate[];
  orderUrl: string;
  /** The profile of the order: as the CA echoed it, else as asked; undefined when neither names one. */
  profile: string | undefined;
  /** Whether the order named a profile (a renewal keeps only a profile that was asked for). */
  profileRequested: boolean;
}

interface AcmeChallenge {
  type: string;
  url: string;
  token: string;
  status: string;
  error?: unknown;
}

interface AcmeAuthorization {
  status: string;
  identifier: { type: string; value: string };
  wildcard?: boolean;
  /** Only the types certkeeper answers. */
  challenges: AcmeChallenge[];
  /** Every type the CA offered, unknown ones included (for the error when none can be answered). */
  offered: string[];
}

interface AcmeOrder {
  status: string;
  profile?: unknown;
  authorizations: string[];
  finalize: string;
  certificate?: string;
  error?: unknown;
}

/** The CA's JSON is checked before use: a malformed answer is ERR_ACME_ORDER, not a TypeError deep in the engine. */
function asOrder(data: unknown, url: string): AcmeOrder {
  const o = data as Partial<AcmeOrder> | null;
  if (
    typeof o !== 'object' || o === null || typeof o.status !== 'string' || typeof o.finalize !== 'string' ||
    !Array.isArray(o.authorizations) || !o.authorizations.every((a) => typeof a === 'string') ||
    (o.certificate !== undefined && typeof o.certificate !== 'string')
  ) {
    throw new AcmeOrderError(`The CA answered with a malformed order (${url})`);
  }
  return o as AcmeOrder;
}

/** A challenge of a type certkeeper answers; anything else (dns-persist-01, a future type, junk) is not one. */
function isKnownChallenge(c: unknown): boolean {
  const ch = c as Partial<AcmeChallenge> | null;
  return typeof ch === 'object' && ch !== null && typeof ch.type === 'string' && (CHALLENGE_TYPES as readonly string[]).includes(ch.type);
}

function asAuthorization(data: unknown, url: string): AcmeAuthorization {
  const a = data as Partial<AcmeAuthorization> | null;
  // Types certkeeper answers need a URL and a token; other types are ignored whatever their shape.
  const validChallenge = (c: unknown): boolean => {
    if (!isKnownChallenge(c)) return true;
    const ch = c as Partial<AcmeChallenge>;
    return typeof ch.url === 'string' && typeof ch.token === 'string';
  };
  if (
    typeof a !== 'object' || a === null || typeof a.status !== 'string' ||
    typeof a.identifier !== 'object' || a.identifier === null || typeof a.identifier.value !== 'string' ||
    !Array.isArray(a.challenges) || !a.challenges.every(validChallenge)
  ) {
    throw new AcmeOrderError(`The CA answered with a malformed authorization (${url})`);
  }
  const offered = a.challenges.map((c: unknown) => (typeof (c as Partial<AcmeChallenge> | null)?.type === 'string' ? (c as AcmeChallenge).type : '?'));
  return { ...(a as AcmeAuthorization), challenges: a.challenges.filter(isKnownChallenge), offered };
}

/** Base64url DER of a PEM or DER CSR. */
export function csrToB64u(csr: Buffer): string {
  const text = csr.toString('latin1');
  if (text.includes('-----BEGIN')) {
    const body = /-----BEGIN (?:NEW )?CERTIFICATE REQUEST-----([\s\S]*?)-----END/.exec(text)?.[1];
    if (!body) throw new AcmeOrderError('The CSR is not a PEM CERTIFICATE REQUEST');
    return Buffer.from(body.replace(/\s+/g, ''), 'base64').toString('base64url');
  }
  return csr.toString('base64url');
}

/** Runs an order to completion or throws; the caller's signal and the order timeout both stop it. */
export async function runOrder(ctx: OrderContext, request: OrderRequest): Promise<OrderResult> {
  throwIfAborted(request.signal);
  const controller = new AbortController();
  let timedOut = false;
  const timer = ctx.clock.setTimer(() => {
    timedOut = true;
    controller.abort(new AcmeOrderError(`The order did not complete within ${ctx.orderTimeoutMs} ms`));
  }, ctx.orderTimeoutMs);
  const onAbort = (): void => controller.abort(request.signal?.reason);
  request.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    return await runOrderSteps(ctx, request, controller.signal);
  } catch (error) {
    if (timedOut && !request.signal?.aborted) {
      throw new AcmeOrderError(`The order did not complete within ${ctx.orderTimeoutMs} ms`, { cause: error });
    }
    throw error;
  } finally {
    timer.cancel();
    request.signal?.removeEventListener('abort', onAbort);
  }
}

async function runOrderSteps(ctx: OrderContext, request: OrderRequest, signal: AbortSignal): Promise<OrderResult> {
  const { conn, directory, logger } = ctx;
  const names = request.identifiers.map((id) => id.value);
  const created = await withProfiles(request.profiles ?? [undefined], (profile) => createOrder(ctx, request, profile, signal), logger);
  const orderUrl = created.url;
  let order = created.order;
  // What the CA echoes is stored and shown (status page, metrics label): only a plain profile name is taken.
  const profile = isProfileName(order.profile) ? order.profile : created.profile;
  logger.debug({ names, order: orderUrl, ...(profile !== undefined ? { profile } : {}) }, 'ACME order created');

  const finalize = async (): Promise<AcmeOrder> =>
    asOrder((await conn.post(order.finalize, { csr: csrToB64u(request.csr) }, { ok: [200], what: 'finalize', signal })).data, order.finalize);
  if (order.status === 'pending') {
    await solveAuthorizations(ctx, order.authorizations, signal);
    // Every authorization is valid, so the order should be ready: finalize without polling it first.
    try {
      order = await finalize();
    } catch (error) {
      if (!isProblem(error, 'orderNotReady')) throw error;
      order = await pollOrder(ctx, orderUrl, ['ready', 'valid', 'processing'], signal);
      if (order.status === 'ready') order = await finalize();
    }
  } else {
    if (order.status !== 'valid' && order.status !== 'processing') {
      order = await pollOrder(ctx, orderUrl, ['ready', 'valid', 'processing'], signal);
    }
    if (order.status === 'ready') order = await finalize();
  }
  if (order.status !== 'valid') order = await pollOrder(ctx, orderUrl, ['valid'], signal);
  if (!order.certificate) throw new AcmeOrderError(`Order ${orderUrl} is valid but has no certificate URL`);

  const { pem: chainPem, certificates } = await downloadChain(ctx, order.certificate, signal);
  assertLeafMatchesCsr(certificates[0] as X509Certificate, request.csr);
  logger.debug({ names, order: orderUrl, directory: conn.directoryUrl, hasRenewalInfo: directory.renewalInfo !== undefined }, 'ACME certificate downloaded');
  return { chainPem, certificates, orderUrl, profile, profileRequested: created.profile !== undefined };
}

async function createOrder(
  ctx: OrderContext,
  request: OrderRequest,
  profile: string | undefined,
  signal: AbortSignal,
): Promise<{ order: AcmeOrder; url: string; profile: string | undefined }> {
  const identifiers = request.identifiers.map((id) => ({ type: id.type, value: id.value }));
  const replaces = request.replaces !== undefined && ctx.directory.renewalInfo !== undefined ? request.replaces : undefined;
  const send = async (withReplaces: boolean): Promise<RawResponse> =>
    ctx.conn.post(
      ctx.directory.newOrder,
      { identifiers, ...(withReplaces ? { replaces } : {}), ...(profile !== undefined ? { profile } : {}) },
      { ok: [201], what: 'newOrder', signal },
    );
  let resp: RawResponse;
  try {
    resp = await send(replaces !== undefined);
  } catch (error) {
    // RFC 9773: the old certificate was already replaced by another order; order without the hint.
    if (replaces === undefined || !isProblem(error, 'alreadyReplaced')) throw error;
    ctx.logger.info({ names: identifiers.map((i) => i.value) }, 'certificate already replaced; ordering without ARI replaces');
    resp = await send(false);
  }
  const url = resp.headers.location;
  if (typeof url !== 'string' || url === '') throw new AcmeOrderError('newOrder answered without an order URL (Location header)');
  return { order: asOrder(resp.data, url), url, profile };
}

function displayIdentifier(authz: AcmeAuthorization): Identifier {
  const type = authz.identifier.type === 'ip' ? 'ip' : 'dns';
  const wildcard = authz.wildcard === true;
  return { type, value: wildcard ? `*.${authz.identifier.value}` : authz.identifier.value, wildcard };
}

/** Solves every pending authorization in parallel; the first failure stops the others (their clean-up still runs). */
async function solveAuthorizations(ctx: OrderContext, urls: readonly string[], orderSignal: AbortSignal): Promise<void> {
  const siblings = new AbortController();
  const onAbort = (): void => siblings.abort(orderSignal.reason);
  orderSignal.addEventListener('abort', onAbort, { once: true });
  try {
    const results = await Promise.allSettled(
      urls.map(async (url) => {
        try {
          await solveAuthorization(ctx, url, siblings.signal);
        } catch (error) {
          siblings.abort(error);
          throw error;
        }
      }),
    );
    const failures = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => r.reason as unknown);
    if (failures.length === 0) return;
    await deactivatePending(ctx, urls);
    throw failures.find((e) => !(e instanceof AbortedError)) ?? failures[0];
  } finally {
    orderSignal.removeEventListener('abort', onAbort);
  }
}

/** Best effort: a pending authorization left behind would count against the CA's pending-authorization limit. */
async function deactivatePending(ctx: OrderContext, urls: readonly string[]): Promise<void> {
  // Not the order's signal (it may have fired: a timeout is when deactivation matters most), a short one of its own.
  const signal = AbortSignal.timeout(DEACTIVATE_TIMEOUT_MS);
  await Promise.all(
    urls.map(async (url) => {
      try {
        const resp = await ctx.conn.post(url, null, { ok: [200], what: 'authorization', retry: false, signal });
        const status = (resp.data as AcmeAuthorization).status;
        if (status !== 'pending' && status !== 'valid') return;
        await ctx.conn.post(url, { status: 'deactivated' }, { ok: [200], what: 'deactivate', retry: false, signal });
        ctx.logger.debug({ authorization: url, was: status }, 'authorization deactivated');
      } catch (error) {
        ctx.logger.debug({ authorization: url, err: error }, 'could not deactivate authorization');
      }
    }),
  );
}

function chooseChallenge(ctx: OrderContext, authz: AcmeAuthorization, identifier: Identifier): AcmeChallenge {
  const offered = authz.challenges;
  for (const type of ctx.challengePreference) {
    if (!ctx.solvers[type]) continue;
    if (identifier.wildcard && type !== 'dns-01') continue;
    // RFC 8738 §7: DNS-01 cannot validate an IP address, whatever a CA offers.
    if (identifier.type === 'ip' && type === 'dns-01') continue;
    const challenge = offered.find((c) => c.type === type);
    if (challenge) return challenge;
  }
  const configured = ctx.challengePreference.filter((t) => ctx.solvers[t] !== undefined);
  const usable = identifier.wildcard ? configured.filter((t) => t === 'dns-01') : identifier.type === 'ip' ? configured.filter((t) => t !== 'dns-01') : configured;
  throw new NoSolverError(identifier.value, authz.offered, usable);
}

async function solveAuthorization(ctx: OrderContext, url: string, signal: AbortSignal): Promise<void> {
  const { conn, logger } = ctx;
  const authz = asAuthorization((await conn.post(url, null, { ok: [200], what: 'authorization', signal })).data, url);
  const identifier = displayIdentifier(authz);
  if (authz.status === 'valid') {
    logger.debug({ identifier: identifier.value }, 'authorization already valid, no challenge needed');
    return;
  }
  if (authz.status !== 'pending') {
    throw new ChallengeFailedError(identifier.value, undefined, `Authorization for ${identifier.value} is ${authz.status}`);
  }
  const challenge = chooseChallenge(ctx, authz, identifier);
  const type = challenge.type as ChallengeType;
  const solver = ctx.solvers[type] as Solver;
  const challengeContext: ChallengeContext = {
    identifier,
    type,
    token: challenge.token,
    keyAuthorization: await conn.keyAuthorization(challenge.token),
    issuerKey: ctx.issuerKey,
    signal,
  };
  logger.debug({ identifier: identifier.value, type }, 'presenting challenge');
  try {
    await solver.present(challengeContext);
    throwIfAborted(signal);
    if (solver.wait) await solver.wait(challengeContext);
    throwIfAborted(signal);
    await conn.post(challenge.url, {}, { ok: [200], what: 'challenge', signal });
    const final = asAuthorization(await poll(ctx, url, 'authorization', (s) => s !== 'pending', signal), url);
    if (final.status !== 'valid') {
      const failed = final.challenges.find((c) => c.url === challenge.url) ?? challenge;
      const problem = failed.error !== undefined ? problemFromDocument(failed.error, { identifier: authz.identifier }) : undefined;
      throw new ChallengeFailedError(
        identifier.value,
        type,
        `${type} challenge for ${identifier.value} failed (authorization ${final.status})${problem?.detail ? `: ${problem.detail}` : ''}`,
        { cause: problem },
      );
    }
    logger.debug({ identifier: identifier.value, type }, 'authorization valid');
  } finally {
    // Clean-up runs without the (possibly aborted) signal: it must finish even after an abort.
    const { signal: _dropped, ...cleanUpContext } = challengeContext;
    await solver.cleanUp(cleanUpContext).catch((error: unknown) => {
      logger.warn({ identifier: identifier.value, type, err: error }, 'challenge clean-up failed');
    });
  }
}

async function pollOrder(ctx: OrderContext, url: string, wanted: readonly string[], signal: AbortSignal): Promise<AcmeOrder> {
  const order = asOrder(await poll(ctx, url, 'order', (s) => wanted.includes(s) || s === 'invalid', signal), url);
  if (order.status === 'invalid') {
    const problem = order.error !== undefined ? problemFromDocument(order.error) : undefined;
    throw new AcmeOrderError(`Order ${url} became invalid${problem?.detail ? `: ${problem.detail}` : ''}`, { cause: problem });
  }
  if (order.status === 'processing' && !wanted.includes('processing')) {
    return pollOrder(ctx, url, ['valid'], signal);
  }
  return order;
}

/**
 * POST-as-GET until `done(status)`. Starts fast (Pebble and busy CAs often
 * finish within a few hundred ms), backs off, and waits at least the
 * Retry-After the CA asks for. The order timeout bounds it.
 */
export async function poll(
  ctx: Pick<OrderContext, 'conn' | 'clock' | 'pollIntervalMs' | 'maxPollIntervalMs'>,
  url: string,
  what: string,
  done: (status: string) => boolean,
  signal: AbortSignal,
): Promise<{ status: string }> {
  let delay = ctx.pollIntervalMs;
  for (;;) {
    const resp = await ctx.conn.post(url, null, { ok: [200], what, signal });
    const body = resp.data as { status?: unknown };
    if (typeof body?.status !== 'string') throw new AcmeOrderError(`${what} at ${url} has no status`);
    if (done(body.status)) return body as { status: string };
    const retryAfter = parseRetryAfter(resp.headers['retry-after'], ctx.clock.now());
    const wait = retryAfter !== undefined ? Math.max(retryAfter, delay) : delay;
    try {
      await sleep(ctx.clock, wait, signal);
    } catch (reason) {
      throw reason instanceof CertKeeperError ? reason : new AbortedError('The operation was aborted', { cause: reason });
    }
    delay = Math.min(ctx.maxPollIntervalMs, delay * POLL_BACKOFF_FACTOR);
  }
}

async function downloadChain(ctx: OrderContext, certificateUrl: string, signal: AbortSignal): Promise<ParsedChain> {
  const resp = await ctx.conn.post(certificateUrl, null, { ok: [200], what: 'certificate', signal });
  const defaultChain = parseChainPem(resp.data as string);
  if (!ctx.preferredChain) return defaultChain;
  const links = alternateLinks(resp.headers.link);
  if (links.length === 0) return defaultChain;
  const alternates = await Promise.all(
    links.map(async (link) => parseChainPem((await ctx.conn.post(link, null, { ok: [200], what: 'alternate chain', signal })).data as string)),
  );
  const chains = [defaultChain, ...alternates];
  const preferred = selectPreferredChain(chains.map((chain) => chain.pem), ctx.preferredChain);
  return chains.find((chain) => chain.pem === preferred) ?? defaultChain;
}
