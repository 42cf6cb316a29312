/**
 * SNICallback over the context cache.
 *
 * For a cached name the callback is one Map lookup on the raw servername
 * (cached names are stored normalised, and browsers send them that way):
 * no I/O, no parsing, no normalisation, no locking. Only a miss normalises
 * the value (an invalid one never reaches the loader) and goes to the slow
 * path: wildcard, loader, default certificate.
 */
import type tls from 'node:tls';
import { CertKeeperError, InvalidNameError, NoCertificateError } from '../errors.js';
import type { Logger } from '../logger.js';
import { createAcmeSniCallback, type AlpnChallengeProvider, type SniCallback } from './alpn-challenge.js';
import type { ContextCache } from './context-cache.js';

export interface SniCallbackOptions {
  /** Challenge certificates for TLS-ALPN-01 validation connections. */
  alpnChallenges?: AlpnChallengeProvider | undefined;
  /** Told about handshakes that get no certificate (bad SNI with no default, no certificate, loader trouble). */
  onError?: ((error: Error, servername: string) => void) | undefined;
  logger?: Logger | undefined;
}

export type { SniCallback };

export function createSniCallback(cache: ContextCache, options: SniCallbackOptions = {}): SniCallback {
  const alpnChallenges = options.alpnChallenges;
  const onError = options.onError;
  const log = options.logger?.child({ component: 'sni' });

  const fail = (cb: (err: Error | null) => void, error: Error, servername: string): void => {
    try {
      onError?.(error, servername);
    } catch (listenerError) {
      log?.error({ err: listenerError }, 'onError listener threw');
    }
    cb(error);
  };

  const invalid = (error: InvalidNameError, servername: string, cb: (err: Error | null, ctx?: tls.SecureContext) => void): void => {
    // A bad SNI value is treated like no SNI: the default certificate, if any.
    log?.debug({ servername: error.input }, 'invalid SNI value');
    const fallback = cache.defaultContext();
    if (fallback !== undefined) cb(null, fallback);
    else fail(cb, error, servername);
  };

  const slowPath = (socket: tls.TLSSocket, servername: string, cb: (err: Error | null, ctx?: tls.SecureContext) => void): void => {
    // Names in another case, with a trailing dot, or served by a wildcard: still synchronous.
    try {
      const found = cache.find(servername);
      if (found !== undefined) {
        cb(null, found);
        return;
      }
    } catch (error) {
      if (error instanceof InvalidNameError) {
        invalid(error, servername, cb);
        return;
      }
      fail(cb, error instanceof Error ? error : new NoCertificateError(servername), servername);
      return;
    }
    // A client that hangs up mid-handshake takes its share of the lookup with it (an on-demand ask is aborted).
    const gone = new AbortController();
    const onClose = (): void => gone.abort();
    const watched = typeof socket?.once === 'function';
    if (watched) socket.once('close', onClose);
    cache.resolve(servername, { signal: gone.signal }).finally(() => watched && socket.off('close', onClose)).then(
      (context) => {
        if (context !== undefined) cb(null, context);
        else fail(cb, new NoCertificateError(servername), servername);
      },
      (error: unknown) => {
        if (error instanceof InvalidNameError) {
          invalid(error, servername, cb);
          return;
        }
        log?.warn({ err: error }, 'SNI lookup failed');
        fail(cb, error instanceof CertKeeperError ? error : new NoCertificateError(servername), servername);
      },
    );
  };

  const cachedOrSlow: SniCallback = function SNICallback(this: tls.TLSSocket, servername, cb): void {
    const context = cache.getCached(servername);
    if (context !== undefined) {
      cb(null, context);
      return;
    }
    slowPath(this, servername, cb);
  };

  return createAcmeSniCallback(alpnChallenges, cachedOrSlow, (error, servername, cb) => {
    log?.debug({ servername, err: error }, 'acme-tls/1 connection for a name with no challenge presented');
    fail(cb, error, servername);
  });
}

// The ALPNCallback lives beside the ALPN helpers; re-exported here because the two callbacks work as a pair.
export { createAlpnCallback } from './alpn.js';
