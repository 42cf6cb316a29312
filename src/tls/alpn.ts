/**
 * ALPN selection. The TLS-ALPN-01 validation branch lives in
 * alpn-challenge.ts, shared with the standalone challenge listener.
 */
import {
  ACME_TLS_ALPN_PROTOCOL,
  createAcmeAlpnCallback,
  type AlpnCallback,
  type AlpnChallengeProvider,
} from './alpn-challenge.js';

export type { AlpnCallback, AlpnChallengeProvider, AlpnSelection } from './alpn-challenge.js';

/**
 * Returns an ALPNCallback. A validation offer (exactly `['acme-tls/1']`) for
 * a name with a presented challenge is marked and answered with
 * `acme-tls/1`; for any other name it gets no protocol, which ends it.
 * Otherwise the first of `userProtocols` the client offers wins (server
 * preference); with no user protocols, http/1.1 when offered, else the client's first choice.
 * Returning undefined aborts with `no_application_protocol`, which is what
 * Node does itself when its ALPNProtocols and the client's list do not meet.
 */
export function createAlpnCallback(userProtocols?: readonly string[], alpnChallenges?: AlpnChallengeProvider): AlpnCallback {
  const preferred = (userProtocols ?? []).filter((p) => p !== ACME_TLS_ALPN_PROTOCOL);
  return createAcmeAlpnCallback(alpnChallenges, (protocols) => {
    if (preferred.length === 0) {
      // No protocols configured: the server speaks HTTP/1.1 (as Node's own https.Server assumes), so
      // pick it when offered; picking the client's first (curl offers h2 first) would break the connection.
      if (protocols.includes('http/1.1')) return 'http/1.1';
      for (const p of protocols) if (p !== ACME_TLS_ALPN_PROTOCOL) return p;
      return undefined;
    }
    for (const p of preferred) if (protocols.includes(p)) return p;
    return undefined;
  });
}

/**
 * Node accepts ALPNProtocols as strings, Buffers, or one Buffer in wire
 * format (length-prefixed); returns the protocol names.
 */
export function alpnProtocolNames(value: unknown): string[] | undefined {
  if (value === undefined || value === null) return undefined;
  if (Array.isArray(value)) {
    return value.map((p: unknown) => (typeof p === 'string' ? p : Buffer.from(p as Uint8Array).toString('latin1')));
  }
  if (value instanceof Uint8Array) {
    const out: string[] = [];
    const bytes = Buffer.from(value);
    for (let i = 0; i < bytes.length; ) {
      const len = bytes[i] ?? 0;
      out.push(bytes.subarray(i + 1, i + 1 + len).toString('latin1'));
      i += 1 + len;
    }
    return out;
  }
  return undefined;
}
