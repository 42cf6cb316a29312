/**
 * One HTTPS exchange with an ACME server on node:https: the agent of the
 * origin's trust (trust.ts, keep-alive), the process-wide request timeout,
 * the caller's abort signal. Any status is returned (problem.ts reads the
 * error ones); a failure without a response is an AcmeNetworkError.
 */
import https from 'node:https';
import type { Logger } from '../logger.js';
import { AcmeNetworkError, unreachableFromError, type RawResponse } from './problem.js';
import { agentFor, requestTimeout, widenTrust } from './trust.js';

export interface HttpOptions {
  /** JSON body (a JWS); sent as application/jose+json. */
  body?: unknown;
  /** Accept header; the default asks for what ACME answers (JSON, or a PEM chain). */
  accept?: string;
  signal?: AbortSignal | undefined;
  logger?: Logger | undefined;
}

const USER_AGENT = 'certkeeper (node:https)';
/** ACME answers are a few KiB (a chain, an order with many authorizations); a server sending more is broken. */
export const MAX_ACME_RESPONSE_BYTES = 4 * 1024 * 1024;

/** Performs one request; resolves with the response whatever its status. */
export async function acmeHttp(url: string, method: 'GET' | 'HEAD' | 'POST', options: HttpOptions = {}): Promise<RawResponse> {
  try {
    return await exchange(url, method, options);
  } catch (error) {
    // The CA's certificate did not verify against the issuer's CAs alone: once more with the system
    // roots added (trust.ts). The handshake failed, so nothing was sent and a signed body is unused.
    if (error instanceof AcmeNetworkError && !error.transient && widenTrust(url)) return exchange(url, method, options);
    throw error;
  }
}

function exchange(url: string, method: 'GET' | 'HEAD' | 'POST', options: HttpOptions): Promise<RawResponse> {
  const body = options.body === undefined ? undefined : JSON.stringify(options.body);
  const headers: Record<string, string> = { 'user-agent': USER_AGENT, accept: options.accept ?? 'application/json, application/pem-certificate-chain, */*' };
  if (body !== undefined) {
    headers['content-type'] = 'application/jose+json';
    headers['content-length'] = String(Buffer.byteLength(body));
  }
  const timeoutMs = requestTimeout();
  return new Promise<RawResponse>((resolve, reject) => {
    let settled = false;
    let timer: NodeJS.Timeout | undefined;
    const fail = (error: unknown): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reject(unreachableFromError(error, url));
    };
    let req: ReturnType<typeof https.request>;
    try {
      const agent = agentFor(url);
      req = https.request(url, { method, headers, ...(agent ? { agent } : {}), ...(options.signal ? { signal: options.signal } : {}) });
    } catch (error) {
      fail(error);
      return;
    }
    timer = setTimeout(() => {
      req.destroy(Object.assign(new Error(`ACME request timed out after ${timeoutMs} ms`), { code: 'ETIMEDOUT' }));
    }, timeoutMs);
    req.on('error', fail);
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_ACME_RESPONSE_BYTES) req.destroy(new Error(`the response exceeds ${MAX_ACME_RESPONSE_BYTES} bytes`));
        else chunks.push(chunk);
      });
      res.on('error', fail);
      res.on('end', () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        const status = res.statusCode ?? 0;
        options.logger?.debug({ acme: `${method} ${url} ${status}` }, 'acme request');
        resolve({ status, headers: res.headers as Record<string, unknown>, data: decode(Buffer.concat(chunks).toString('utf8'), res.headers['content-type']) });
      });
    });
    req.end(body);
  });
}

/** JSON when it is JSON (by type or by shape, as CAs are not always exact), else the text (a PEM chain). */
function decode(text: string, contentType: string | undefined): unknown {
  const trimmed = text.trimStart();
  if (/json/i.test(contentType ?? '') || trimmed.startsWith('{') || trimmed.startsWith('[')) {
    try {
      return JSON.parse(text);
    } catch {
      return text;
    }
  }
  return text;
}

/**
 * A minimal fetch (plain GET) over the same agents, so requests outside the
 * signed path (ARI) get the issuer's CA trust.
 */
export const acmeFetch: typeof fetch = async (input, init) => {
  const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
  const resp = await acmeHttp(url, 'GET', { accept: 'application/json', signal: init?.signal ?? undefined });
  const headers = new Headers();
  for (const [name, value] of Object.entries(resp.headers)) {
    if (typeof value === 'string') headers.set(name, value);
  }
  return new Response(typeof resp.data === 'string' ? resp.data : JSON.stringify(resp.data), { status: resp.status, headers });
};
