/**
 * The HTTPS front: relays every ACME request to Pebble with the client's Host
 * (so Pebble's URLs name the front and its JWS checks pass), and adds what
 * Pebble 2.4 lacks: profiles, renewalInfo with `replaces`, faults and
 * Retry-After, per-profile lifetimes, revocation with a CRL.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../../logger.js';
import { parseJson, readBody, relayed, type Answer } from './answer.js';
import { accountPathOf, decodeJws, keyOfJwk, type DecodedJws } from './jws.js';
import { defaultWindow, type CertificateRecord, type Ledger, type OrderRecord } from './ledger.js';
import type { ResolvedTestCaOptions } from './options.js';
import { pemBlocks, reissueLeaf, type Issuer } from './pki.js';
import { handleRevokeCert } from './revocation.js';
import type { Upstream, UpstreamResponse } from './upstream.js';
import type { TestCaEndpoint } from './types.js';

const ACME_ERROR = 'urn:ietf:params:acme:error:';
export const RENEWAL_INFO_PATH = '/renewal-info';

export interface FrontContext {
  options: ResolvedTestCaOptions;
  ledger: Ledger;
  upstream: Upstream;
  issuer: Issuer;
  crlUrl: string;
  ocspUrl: string | undefined;
  newNoncePath: string;
  logger: Logger;
}

export class AcmeFront {
  readonly #ctx: FrontContext;
  /** Certificate path -> its re-issued record: a second download gets the same certificate. */
  readonly #downloads = new Map<string, Promise<CertificateRecord>>();

  constructor(ctx: FrontContext) {
    this.#ctx = ctx;
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readBody(req);
    const path = new URL(req.url ?? '/', 'https://front.invalid').pathname;
    const host = req.headers.host ?? '127.0.0.1';
    const method = req.method ?? 'GET';
    const endpoint: TestCaEndpoint = path.startsWith(`${RENEWAL_INFO_PATH}/`) ? 'renewalInfo' : this.#ctx.ledger.endpointOf(path);
    this.#ctx.ledger.count(endpoint);
    let answer: Answer;
    try {
      answer = await this.#answer({ method, path, host, body, endpoint, req });
    } catch (error) {
      this.#ctx.logger.warn({ err: error, endpoint, path }, 'test CA could not answer');
      answer = await this.problem(host, 500, 'serverInternal', `test CA: ${(error as Error)?.message ?? String(error)}`);
    }
    const retryAfter = this.#ctx.ledger.retryAfterOf(endpoint);
    if (retryAfter !== undefined && answer.status < 400 && answer.headers['retry-after'] === undefined) answer.headers['retry-after'] = String(retryAfter);
    res.writeHead(answer.status, answer.headers);
    res.end(method === 'HEAD' ? undefined : answer.body);
  }

  async #answer(request: { method: string; path: string; host: string; body: Buffer; endpoint: TestCaEndpoint; req: IncomingMessage }): Promise<Answer> {
    const { endpoint, host } = request;
    const fault = this.#ctx.ledger.takeFault(endpoint);
    if (fault) {
      return this.problem(host, fault.status, fault.type, fault.detail, fault.retryAfter !== undefined ? { 'retry-after': fault.retryAfter } : {});
    }
    if (endpoint === 'renewalInfo' && request.method === 'GET') return this.#renewalInfo(request.path);
    const jws = request.method === 'POST' ? decodeJws(request.body.toString('utf8')) : undefined;
    if (endpoint === 'revokeCert' && jws) {
      return handleRevokeCert({ ...this.#ctx, problem: (...args) => this.problem(host, ...args), nonce: () => this.#ctx.upstream.nonce(host, this.#ctx.newNoncePath) }, jws);
    }
    let order: OrderRecord | undefined;
    if (endpoint === 'newOrder' && jws) {
      const refusal = await this.#checkNewOrder(host, jws);
      if (refusal) return refusal;
    }
    const upstream = await this.#ctx.upstream.acme({
      method: request.method,
      path: request.req.url ?? request.path,
      host,
      body: request.body,
      contentType: request.req.headers['content-type'],
      accept: request.req.headers['accept'],
    });
    const answer = relayed(upstream);
    if (upstream.status >= 400) return answer;
    switch (endpoint) {
      case 'directory':
        return this.#directory(answer, host);
      case 'newAccount':
        this.#learnAccount(upstream, jws);
        return answer;
      case 'newOrder':
        order = this.#recordOrder(upstream, jws);
        return withOrderFields(answer, order, this.#ctx.ledger);
      case 'order':
      case 'finalize':
        order = this.#ctx.ledger.orderAt(request.path);
        if (order && endpoint === 'finalize') this.#markReplaced(order);
        return withOrderFields(answer, order, this.#ctx.ledger);
      case 'authz':
        for (const challenge of (parseJson(answer.body) as { challenges?: { url?: unknown }[] } | undefined)?.challenges ?? []) {
          this.#ctx.ledger.learn(challenge.url, 'challenge');
        }
        return this.#withExtraChallenges(answer, host, request.path);
      case 'certificate':
        return this.#certificate(request.path, upstream, answer);
      default:
        return answer;
    }
  }

  /** Challenge types Pebble does not know, listed first in a pending authorization (extraChallengeTypes). */
  #withExtraChallenges(answer: Answer, host: string, path: string): Answer {
    const types = this.#ctx.options.extraChallengeTypes;
    const authz = parseJson(answer.body) as { status?: unknown; challenges?: unknown[] } | undefined;
    if (types.length === 0 || authz?.status !== 'pending' || !Array.isArray(authz.challenges)) return answer;
    const extra = types.map((type) => ({ type, url: `https://${host}/unknown-challenge/${type}${path}`, status: 'pending' }));
    return { ...answer, body: JSON.stringify({ ...authz, challenges: [...extra, ...authz.challenges] }, null, 2) };
  }

  /** A problem document with a fresh nonce, as a real CA answers errors. */
  async problem(host: string, status: number, type: string, detail: string, headers: Record<string, string> = {}): Promise<Answer> {
    const nonce = await this.#ctx.upstream.nonce(host, this.#ctx.newNoncePath).catch(() => undefined);
    return {
      status,
      headers: { 'content-type': 'application/problem+json', ...(nonce ? { 'replay-nonce': nonce } : {}), ...headers },
      body: JSON.stringify({ type: type.includes(':') ? type : `${ACME_ERROR}${type}`, detail, status }),
    };
  }

  #directory(answer: Answer, host: string): Answer {
    const directory = parseJson(answer.body) as Record<string, unknown> | undefined;
    if (!directory) return answer;
    const meta = (typeof directory['meta'] === 'object' && directory['meta'] !== null ? directory['meta'] : {}) as Record<string, unknown>;
    const profiles = Object.fromEntries([...this.#ctx.options.profiles].map(([name, p]) => [name, p.description]));
    const augmented = { ...directory, renewalInfo: `https://${host}${RENEWAL_INFO_PATH}`, meta: { ...meta, profiles } };
    return { ...answer, body: JSON.stringify(augmented, null, 2) };
  }

  #renewalInfo(path: string): Answer {
    const certId = decodeURIComponent(path.slice(RENEWAL_INFO_PATH.length + 1));
    const json = { 'content-type': 'application/json', 'retry-after': String(this.#ctx.options.renewalInfoRetryAfterSeconds) };
    if (!/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/.test(certId)) {
      return { status: 400, headers: { ...json, 'content-type': 'application/problem+json' }, body: JSON.stringify({ type: `${ACME_ERROR}malformed`, detail: 'not an RFC 9773 certID', status: 400 }) };
    }
    const record = this.#ctx.ledger.find(certId);
    if (!record) {
      return { status: 404, headers: { ...json, 'content-type': 'application/problem+json' }, body: JSON.stringify({ type: `${ACME_ERROR}malformed`, detail: `no certificate ${certId}`, status: 404 }) };
    }
    record.renewalInfoRequests++;
    const { start, end, explanationUrl } = record.renewalWindow;
    const body = { suggestedWindow: { start: start.toISOString(), end: end.toISOString() }, ...(explanationUrl !== undefined ? { explanationURL: explanationUrl } : {}) };
    return { status: 200, headers: json, body: JSON.stringify(body) };
  }

  /** invalidProfile and the RFC 9773 §5 checks of `replaces`, before Pebble sees the order. */
  async #checkNewOrder(host: string, jws: DecodedJws): Promise<Answer | undefined> {
    const payload = (jws.payload ?? {}) as Record<string, unknown>;
    const profile = payload['profile'];
    const offered = [...this.#ctx.options.profiles.keys()];
    if (profile !== undefined && (typeof profile !== 'string' || !this.#ctx.options.profiles.has(profile))) {
      return this.problem(host, 400, 'invalidProfile', `profile ${JSON.stringify(profile)} is not offered (offered: ${offered.join(', ')})`);
    }
    const ipRefusal = this.#checkIpProfile(payload, typeof profile === 'string' ? profile : this.#ctx.options.defaultProfile);
    if (ipRefusal !== undefined) return this.problem(host, 400, 'rejectedIdentifier', ipRefusal);
    const replaces = payload['replaces'];
    if (replaces === undefined) return undefined;
    if (typeof replaces !== 'string') return this.problem(host, 400, 'malformed', 'replaces must be a certID string');
    const replaced = this.#ctx.ledger.find(replaces);
    if (!replaced) return this.problem(host, 400, 'malformed', `replaces names ${replaces}, which this CA did not issue`);
    const account = accountPathOf(jws);
    if (replaced.accountPath !== undefined && account !== replaced.accountPath) {
      return this.problem(host, 403, 'unauthorized', 'the replaced certificate belongs to another account');
    }
    const names = identifiersOf(payload);
    if (!names.some((name) => replaced.identifiers.includes(name))) {
      return this.problem(host, 400, 'malformed', 'the order shares no identifier with the certificate it replaces');
    }
    if (replaced.replacedByOrder !== undefined) {
      return this.problem(host, 409, 'alreadyReplaced', `${replaces} was already replaced (order ${replaced.replacedByOrder})`);
    }
    return undefined;
  }

  /** Let's Encrypt's rule: IP addresses only under the profiles that allow them. */
  #checkIpProfile(payload: Record<string, unknown>, profile: string): string | undefined {
    const allowed = this.#ctx.options.ipProfiles;
    if (allowed === undefined || allowed.has(profile)) return undefined;
    const list = Array.isArray(payload['identifiers']) ? (payload['identifiers'] as { type?: unknown; value?: unknown }[]) : [];
    const ip = list.find((id) => id?.type === 'ip');
    if (ip === undefined) return undefined;
    return `cannot issue for ${JSON.stringify(ip.value)} under profile ${profile}: IP address identifiers are allowed only under ${[...allowed].join(', ')}`;
  }

  #learnAccount(upstream: UpstreamResponse, jws: DecodedJws | undefined): void {
    const location = upstream.headers.location;
    if (typeof location !== 'string' || !URL.canParse(location)) return;
    this.#ctx.ledger.learn(location, 'account');
    const jwk = jws?.protectedHeader['jwk'];
    const key = keyOfJwk(jwk);
    if (key) this.#ctx.ledger.accounts.set(new URL(location).pathname, key);
  }

  #recordOrder(upstream: UpstreamResponse, jws: DecodedJws | undefined): OrderRecord | undefined {
    const location = upstream.headers.location;
    const body = parseJson(upstream.body) as { authorizations?: unknown[]; finalize?: unknown } | undefined;
    if (typeof location !== 'string' || !URL.canParse(location) || !body) return undefined;
    const payload = (jws?.payload ?? {}) as Record<string, unknown>;
    const order: OrderRecord = {
      path: new URL(location).pathname,
      accountPath: jws ? accountPathOf(jws) : undefined,
      profile: typeof payload['profile'] === 'string' ? payload['profile'] : this.#ctx.options.defaultProfile,
      replaces: typeof payload['replaces'] === 'string' ? payload['replaces'] : undefined,
      identifiers: identifiersOf(payload),
    };
    this.#ctx.ledger.orders.set(order.path, order);
    this.#ctx.ledger.learn(location, 'order');
    this.#ctx.ledger.learn(body.finalize, 'finalize', order);
    for (const authz of body.authorizations ?? []) this.#ctx.ledger.learn(authz, 'authz');
    return order;
  }

  /** RFC 9773 §5: a certificate counts as replaced once a replacing order is finalized. */
  #markReplaced(order: OrderRecord): void {
    if (order.replaces === undefined) return;
    const replaced = this.#ctx.ledger.find(order.replaces);
    if (replaced) replaced.replacedByOrder ??= order.path;
  }

  async #certificate(path: string, upstream: UpstreamResponse, answer: Answer): Promise<Answer> {
    const order = this.#ctx.ledger.orderAt(path);
    if (!order) return answer;
    let download = this.#downloads.get(path);
    if (!download) {
      download = this.#reissue(order, upstream.body.toString('utf8'));
      this.#downloads.set(path, download);
      download.catch(() => this.#downloads.delete(path));
    }
    const record = await download;
    // Pebble's alternate chains end in a leaf the test CA did not re-issue: offer only the default chain.
    const { link: _link, ...headers } = answer.headers;
    return { ...answer, headers, body: record.chainPem };
  }

  async #reissue(order: OrderRecord, pebbleChain: string): Promise<CertificateRecord> {
    const [pebbleLeaf, ...rest] = pemBlocks(pebbleChain);
    if (!pebbleLeaf) throw new Error('Pebble sent no certificate');
    const profile = this.#ctx.options.profiles.get(order.profile);
    if (!profile) throw new Error(`order names unknown profile ${order.profile}`);
    const notBefore = Math.floor(this.#ctx.options.clock.now() / 1000) * 1000;
    const leaf = await reissueLeaf(this.#ctx.issuer, pebbleLeaf, { notBefore, notAfter: notBefore + profile.lifetimeMs, crlUrl: this.#ctx.crlUrl, ocspUrl: this.#ctx.ocspUrl });
    const record: CertificateRecord = {
      certId: leaf.certId,
      serialNumber: leaf.serialNumber,
      profile: order.profile,
      identifiers: leaf.identifiers,
      notBefore: leaf.notBefore,
      notAfter: leaf.notAfter,
      certificatePem: leaf.pem,
      renewalWindow: defaultWindow(leaf.notBefore, leaf.notAfter),
      renewalInfoRequests: 0,
      ...(order.replaces !== undefined ? { replaces: order.replaces } : {}),
      orderPath: order.path,
      accountPath: order.accountPath,
      chainPem: [leaf.pem, ...rest].map((pem) => `${pem.trim()}\n`).join(''),
    };
    if (order.replaces !== undefined) {
      const replaced = this.#ctx.ledger.find(order.replaces);
      if (replaced) replaced.replacedBy = record.certId;
    }
    this.#ctx.ledger.addCertificate(record);
    return record;
  }
}

function withOrderFields(answer: Answer, order: OrderRecord | undefined, ledger: Ledger): Answer {
  const body = parseJson(answer.body) as Record<string, unknown> | undefined;
  if (!order || !body) return answer;
  if (typeof body['certificate'] === 'string') ledger.learn(body['certificate'], 'certificate', order);
  const extra = { profile: order.profile, ...(order.replaces !== undefined ? { replaces: order.replaces } : {}) };
  return { ...answer, body: JSON.stringify({ ...body, ...extra }, null, 2) };
}

function identifiersOf(payload: Record<string, unknown>): string[] {
  const list = Array.isArray(payload['identifiers']) ? (payload['identifiers'] as { value?: unknown }[]) : [];
  return list.map((id) => (typeof id?.value === 'string' ? id.value.toLowerCase() : '')).filter(Boolean);
}
