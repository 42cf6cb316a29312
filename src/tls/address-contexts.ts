/**
 * IP-address certificates for clients that send no SNI.
 *
 * A client connecting to `https://127.0.0.1/` sends no server name (RFC 6066
 * forbids IP addresses in SNI), so Node never calls SNICallback and the
 * handshake gets the server's own context. The address the client asked for
 * is the connection's local address, so the certificate is picked by that:
 * one Map lookup per connection, no I/O.
 *
 * Node has no per-connection hook for the context of a handshake without
 * SNI: its tls.Server builds each TLSSocket from `server._sharedCreds`
 * (what setSecureContext sets) in its own 'connection' listener. A listener
 * put before it points that at the address's context and one after it puts
 * the server's own back, synchronously, so no other connection sees it.
 */
import type net from 'node:net';
import type tls from 'node:tls';
import type { Logger } from '../logger.js';

const SHARED_CREDS = '_sharedCreds';

/** The normalised IP a local address names: `::ffff:127.0.0.1` (an IPv4 client of a dual-stack socket) is 127.0.0.1; a zone id is dropped. */
export function localAddressName(address: string | undefined): string | undefined {
  if (address === undefined || address === '') return undefined;
  const zone = address.indexOf('%');
  const bare = zone === -1 ? address : address.slice(0, zone);
  if (bare.startsWith('::ffff:') && bare.includes('.')) return bare.slice(7);
  return bare.toLowerCase();
}

/**
 * Serves, to connections arriving on an address with a certificate of its
 * own, that certificate when they send no SNI (SNICallback still decides for
 * those that do). `contextFor` gets the normalised address and must be
 * synchronous and cheap. Returns a function that detaches.
 */
export function attachAddressContexts(server: tls.Server, contextFor: (address: string) => tls.SecureContext | undefined, logger?: Logger): () => void {
  const target = server as unknown as Record<string, unknown>;
  if (!(SHARED_CREDS in target)) {
    logger?.warn('this Node version builds TLS connections differently; clients without SNI get the default certificate, not an IP-address one');
    return () => undefined;
  }
  let own: unknown;
  let swapped: tls.SecureContext | undefined;
  const restore = (): void => {
    if (swapped === undefined) return;
    // A setSecureContext() in between set the server's own context anew: keep that one.
    if (target[SHARED_CREDS] === swapped) target[SHARED_CREDS] = own;
    swapped = undefined;
    own = undefined;
  };
  const before = (socket: net.Socket): void => {
    restore();
    const name = localAddressName(socket?.localAddress);
    const context = name === undefined ? undefined : contextFor(name);
    if (context === undefined) return;
    own = target[SHARED_CREDS];
    target[SHARED_CREDS] = context;
    swapped = context;
    // Should a listener in between throw, the 'after' listener never runs: put it back once this turn ends.
    queueMicrotask(restore);
  };
  server.prependListener('connection', before);
  server.on('connection', restore);
  return () => {
    server.off('connection', before);
    server.off('connection', restore);
    restore();
  };
}
