/**
 * Which CA certificates each ACME origin is verified against.
 *
 * Every ACME request (src/acme/http.ts) picks its https.Agent by the
 * request's origin from this registry, so issuers trusting different private
 * CAs coexist in one process; origins nobody registered use Node's global
 * agent (system roots). Verification is never switched off, and
 * NODE_EXTRA_CA_CERTS is not needed.
 *
 * An origin's trust is the system roots plus the issuer's CAs. Building that
 * secure context parses every system root (~20 ms of CPU at the first
 * request), so connections first verify against the issuer's CAs alone and
 * widen to the union only when that fails: anything the narrow set accepts
 * the union accepts too, so the accepted set is the same.
 */
import { createHash } from 'node:crypto';
import https from 'node:https';
import tls from 'node:tls';
import { Closable } from '../lifecycle.js';
import { DEFAULT_ACME_REQUEST_TIMEOUT_MS } from '../defaults.js';

interface TrustEntry {
  /** Verifies against the issuer's CAs only; made on the first request to the origin. */
  narrow: https.Agent | undefined;
  /** System roots plus the issuer's CAs; made once the narrow set failed to verify the CA's server. */
  wide: https.Agent | undefined;
  widened: boolean;
  cas: readonly string[];
  caFingerprints: string;
  refs: number;
  /** Agents replaced by a merged one; destroyed when the entry goes. */
  retired: https.Agent[];
}

const byOrigin = new Map<string, TrustEntry>();
let requestTimeoutMs = DEFAULT_ACME_REQUEST_TIMEOUT_MS;

function originOf(url: string): string | undefined {
  try {
    return new URL(url).origin;
  } catch {
    return undefined;
  }
}

/** The agent for a request to `url`: its origin's registered trust, else undefined (Node's global agent, system roots). */
export function agentFor(url: string): https.Agent | undefined {
  const origin = originOf(url);
  const entry = origin ? byOrigin.get(origin) : undefined;
  if (!entry) return undefined;
  if (entry.widened || entry.cas.length === 0) return (entry.wide ??= makeAgent(entry.cas, true));
  return (entry.narrow ??= makeAgent(entry.cas, false));
}

/**
 * After a TLS verification failure with the narrow agent: switches the origin to the union of
 * system roots and the issuer's CAs. True when the request is worth sending again.
 */
export function widenTrust(url: string): boolean {
  const origin = originOf(url);
  const entry = origin ? byOrigin.get(origin) : undefined;
  if (!entry || entry.widened || entry.cas.length === 0) return false;
  entry.widened = true;
  return true;
}

/** The per-request timeout of every ACME request of this process. */
export function requestTimeout(): number {
  return requestTimeoutMs;
}

/** Sets the per-request timeout for every ACME request of this process. */
export function setRequestTimeout(ms: number): void {
  requestTimeoutMs = ms;
}

function fingerprint(cas: readonly string[]): string {
  return createHash('sha256').update([...cas].sort().join('\n')).digest('hex');
}

function makeAgent(cas: readonly string[], withSystemRoots: boolean): https.Agent {
  // One secure context for every connection: with `ca` in the agent options Node parses the CAs
  // again for each new socket and joins them into the pool key of every request
  // (bench/RESULTS.md, "#20 built package": a tenth of the CPU of 50 orders).
  if (withSystemRoots && cas.length === 0) return new https.Agent({ keepAlive: true, noDelay: true });
  const ca = withSystemRoots ? [...tls.rootCertificates, ...cas] : [...cas];
  return new https.Agent({ keepAlive: true, noDelay: true, secureContext: tls.createSecureContext({ ca }) });
}

/**
 * Trust registration for one issuer. Register the directory's origin, then the
 * origins of the URLs the directory lists (a CA may serve them elsewhere).
 */
export class TrustHandle extends Closable {
  readonly #cas: readonly string[];
  readonly #fingerprint: string;
  readonly #origins = new Set<string>();

  constructor(caCertificates: readonly string[]) {
    super('TrustHandle');
    this.#cas = caCertificates;
    this.#fingerprint = fingerprint(caCertificates);
  }

  /** Makes requests to `url`'s origin use this issuer's trust (system roots plus its CAs). */
  addOrigin(url: string): void {
    const origin = originOf(url);
    if (!origin || this.closed || this.#origins.has(origin)) return;
    const existing = byOrigin.get(origin);
    if (!existing) {
      byOrigin.set(origin, { narrow: undefined, wide: undefined, widened: false, cas: this.#cas, caFingerprints: this.#fingerprint, refs: 1, retired: [] });
    } else if (existing.caFingerprints === this.#fingerprint) {
      existing.refs++;
    } else {
      // Two issuers, same origin, different CA lists: trust the union rather than break one of them.
      // The old agent may have requests in flight; it is destroyed with the entry.
      const cas = [...new Set([...existing.cas, ...this.#cas])];
      for (const agent of [existing.narrow, existing.wide]) if (agent) existing.retired.push(agent);
      existing.narrow = undefined;
      existing.wide = undefined;
      existing.widened = false;
      existing.cas = cas;
      existing.caFingerprints = fingerprint(cas);
      existing.refs++;
    }
    this.#origins.add(origin);
  }

  /** Drops this issuer's registrations; an agent nobody uses any more is destroyed (its sockets closed). */
  protected onClose(): void {
    for (const origin of this.#origins) {
      const entry = byOrigin.get(origin);
      if (!entry) continue;
      entry.refs--;
      if (entry.refs <= 0) {
        for (const agent of [entry.narrow, entry.wide, ...entry.retired]) agent?.destroy();
        byOrigin.delete(origin);
      }
    }
    this.#origins.clear();
  }
}

/** Number of origins with a registered agent (for tests: close() must leave none behind). */
export function registeredOriginCount(): number {
  return byOrigin.size;
}
