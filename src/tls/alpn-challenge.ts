/**
 * The TLS side of TLS-ALPN-01 (RFC 8737), written once for every server that
 * answers validations: certkeeper's tlsOptions() and the standalone listener.
 *
 * Node 20 ignores `setKeyCert` inside ALPNCallback when an SNICallback is set
 * (certkeeper's TLS options always have one), but calls ALPNCallback first and
 * both with `this` = the TLSSocket. So the ALPN callback marks a validation
 * socket and the SNI callback picks the challenge context for marked sockets only.
 *
 * The TLS layer does not make challenge certificates: it reads them from an
 * AlpnChallengeProvider, which challenges/ implements (TlsAlpnChallengeStore).
 */
import type { SecureContext, TLSSocket } from 'node:tls';
import { NoCertificateError } from '../errors.js';
import { normalizeServerName } from '../names.js';

export const ACME_TLS_ALPN_PROTOCOL = 'acme-tls/1';

/** The challenge certificate (as a context) presented for a server name, while its challenge is pending. */
export interface AlpnChallengeProvider {
  get(serverName: string): SecureContext | undefined;
}

export interface AlpnSelection {
  servername: string;
  protocols: string[];
}

export type AlpnCallback = (this: TLSSocket, selection: AlpnSelection) => string | undefined;
export type SniDone = (err: Error | null, ctx?: SecureContext) => void;
export type SniCallback = (this: TLSSocket, servername: string, cb: SniDone) => void;

/** True when the client offered exactly one protocol, `acme-tls/1`: only a CA's validator does that. */
export function isAcmeTlsAlpnOffer(protocols: readonly string[] | undefined): boolean {
  return protocols !== undefined && protocols.length === 1 && protocols[0] === ACME_TLS_ALPN_PROTOCOL;
}

const markedSockets = new WeakSet<TLSSocket>();

/** True when the ALPN callback took this connection for a TLS-ALPN-01 validation. */
export function isMarkedAcmeTlsSocket(socket: TLSSocket): boolean {
  return markedSockets.has(socket);
}

/**
 * Builds an ALPNCallback: a validator's `['acme-tls/1']` for a name with a
 * pending challenge marks the socket and selects `acme-tls/1`; anything else
 * goes to `ordinary` (the server's own protocol choice). A validator for a
 * name with no challenge gets no protocol, which aborts its handshake.
 */
export function createAcmeAlpnCallback(
  challenges: AlpnChallengeProvider | undefined,
  ordinary: (protocols: string[], servername: string) => string | undefined,
): AlpnCallback {
  return function ALPNCallback(this: TLSSocket, { servername, protocols }: AlpnSelection): string | undefined {
    if (!isAcmeTlsAlpnOffer(protocols)) return ordinary(protocols, servername);
    if (typeof servername !== 'string' || challenges?.get(servername) === undefined) return undefined;
    markedSockets.add(this);
    return ACME_TLS_ALPN_PROTOCOL;
  };
}

/**
 * Builds an SNICallback: a socket the ALPN callback marked gets the challenge
 * context of its name, or is refused through `refuse` (answering a validation
 * with a normal certificate would only fail it later); every other socket
 * goes to `ordinary`, so a cached name costs one WeakSet lookup more.
 */
export function createAcmeSniCallback(
  challenges: AlpnChallengeProvider | undefined,
  ordinary: SniCallback,
  refuse: (error: Error, servername: string, cb: SniDone) => void = (error, _servername, cb) => cb(error),
): SniCallback {
  return function SNICallback(this: TLSSocket, servername: string, cb: SniDone): void {
    if (!markedSockets.has(this)) {
      ordinary.call(this, servername, cb);
      return;
    }
    let name: string;
    try {
      name = normalizeServerName(servername);
    } catch (error) {
      refuse(error as Error, servername, cb);
      return;
    }
    const context = challenges?.get(name);
    if (context === undefined) refuse(new NoCertificateError(servername), servername, cb);
    else cb(null, context);
  };
}
