/**
 * On-demand TLS decisions: whether a name seen in a ClientHello may get a
 * certificate. Only names explicitly allowed by the user's decide() function
 * or ask endpoint ever reach a CA (caddy#5008: random-SNI floods).
 */
import http from 'node:http';
import https from 'node:https';
import { DEFAULT_ASK_TIMEOUT_MS } from './defaults.js';

export { DEFAULT_ASK_TIMEOUT_MS as ASK_TIMEOUT_MS } from './defaults.js';

export type Decision = { allowed: true } | { allowed: false; reason: string };

export interface OnDemandPolicy {
  decide?: ((name: string) => boolean | Promise<boolean>) | undefined;
  askUrl?: string | undefined;
  askTimeoutMs?: number;
  /** Extra trusted CAs for an https ask endpoint. */
  ca?: readonly string[];
}

export async function decideOnDemand(name: string, policy: OnDemandPolicy): Promise<Decision> {
  if (policy.decide) {
    try {
      const allowed = await policy.decide(name);
      if (allowed !== true) return { allowed: false, reason: 'decide() denied the name' };
    } catch (error) {
      return { allowed: false, reason: `decide() threw: ${(error as Error).message}` };
    }
  }
  if (policy.askUrl) return ask(policy.askUrl, name, policy.askTimeoutMs ?? DEFAULT_ASK_TIMEOUT_MS, policy.ca);
  return policy.decide ? { allowed: true } : { allowed: false, reason: 'no decision configured' };
}

/** GET askUrl?domain=<name>; only a 2xx allows. Redirects are not followed; a hang fails closed. */
function ask(askUrl: string, name: string, timeoutMs: number, ca: readonly string[] | undefined): Promise<Decision> {
  const url = new URL(askUrl);
  url.searchParams.set('domain', name);
  const client = url.protocol === 'https:' ? https : http;
  return new Promise((resolve) => {
    let settled = false;
    const finish = (decision: Decision): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(decision);
    };
    const request = client.get(url, { agent: false, ...(ca && ca.length > 0 ? { ca: [...ca] } : {}) }, (response) => {
      const status = response.statusCode ?? 0;
      response.resume();
      finish(status >= 200 && status < 300 ? { allowed: true } : { allowed: false, reason: `ask endpoint answered HTTP ${status}` });
    });
    const timer = setTimeout(() => {
      request.destroy();
      finish({ allowed: false, reason: `ask endpoint did not answer within ${timeoutMs} ms` });
    }, timeoutMs);
    timer.unref();
    request.on('error', (error) => finish({ allowed: false, reason: `ask endpoint failed: ${error.message}` }));
  });
}
