/**
 * OCSP stapling from memory only: the checker puts each good answer here,
 * and a server's 'OCSPRequest' handler hands the one for the certificate
 * being served, if it has one that is still current. Nothing in the
 * handshake fetches, waits or logs; a certificate without an answer (one
 * naming no responder, as Let's Encrypt's) simply gets no staple.
 */
import type tls from 'node:tls';
import type { Clock } from '../clock.js';
import { fingerprintOf } from './certificate-info.js';

interface Staple {
  der: Buffer;
  /** Epoch ms; the staple is not handed out from then on. */
  expiresAt: number;
}

export class StapleStore {
  readonly #staples = new Map<string, Staple>();
  readonly #clock: Clock;
  readonly #maxEntries: number;
  #stapled = 0;

  constructor(clock: Clock, maxEntries: number) {
    this.#clock = clock;
    this.#maxEntries = maxEntries;
  }

  /** Handshakes that got a staple so far. */
  get stapled(): number {
    return this.#stapled;
  }

  set(fingerprint: string, der: Buffer, expiresAt: number): void {
    this.#staples.delete(fingerprint);
    this.#staples.set(fingerprint, { der, expiresAt });
    while (this.#staples.size > this.#maxEntries) this.#staples.delete(this.#staples.keys().next().value as string);
  }

  delete(fingerprint: string): void {
    this.#staples.delete(fingerprint);
  }

  /** The current answer for a certificate's DER, if one is cached. */
  lookup(certificateDer: Buffer): Buffer | undefined {
    // No responder anywhere (Let's Encrypt): not even a hash per handshake.
    if (this.#staples.size === 0) return undefined;
    const staple = this.#staples.get(fingerprintOf(certificateDer));
    if (!staple || this.#clock.now() >= staple.expiresAt) return undefined;
    this.#stapled++;
    return staple.der;
  }

  /** Installs the 'OCSPRequest' handler on a TLS server; returns a function that removes it. */
  attach(server: tls.Server): () => void {
    const onRequest = (certificate: Buffer, _issuer: Buffer, callback: (error: Error | null, response?: Buffer) => void): void => {
      const der = certificate ? this.lookup(certificate) : undefined;
      if (der) callback(null, der);
      else callback(null);
    };
    server.on('OCSPRequest', onRequest);
    return () => server.off('OCSPRequest', onRequest);
  }
}
