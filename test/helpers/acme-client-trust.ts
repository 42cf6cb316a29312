/**
 * Tests that drive acme-client directly (the test stack, the IP e2e test) against a CA with a private
 * root: its shared axios instance gets the agent certkeeper registered for the origin (src/acme/trust.ts).
 * certkeeper itself no longer sends through acme-client; this is test plumbing only.
 */
import acme from 'acme-client';
import { agentFor } from '../../src/acme/trust.js';

let installed = false;

export function installAcmeClientHooks(): void {
  if (installed) return;
  installed = true;
  // As certkeeper had it: no replay of a 429/5xx with an already used nonce (acme-client issue #103).
  (acme.axios.defaults as unknown as { acmeSettings: { retryMaxAttempts: number } }).acmeSettings.retryMaxAttempts = 0;
  acme.axios.interceptors.request.use((config) => {
    const url = typeof config.url === 'string' ? new URL(config.url, config.baseURL).href : undefined;
    const agent = url ? agentFor(url) : undefined;
    if (agent) config.httpsAgent = agent;
    return config;
  });
}
