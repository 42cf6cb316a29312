/**
 * TLS-ALPN-01 (RFC 8737). A self-signed certificate carrying the
 * acmeIdentifier extension is served only to a ClientHello whose ALPN list is
 * exactly `acme-tls/1` for a server name with a pending challenge; every other
 * client gets the normal certificate (or, on the standalone listener, none).
 *
 * Node 20 ignores `setKeyCert` inside ALPNCallback when an SNICallback is set
 * (certkeeper's TLS options always have one), but calls ALPNCallback first and
 * both with `this` = the TLSSocket. So ALPNCallback marks the socket and
 * SNICallback picks the challenge context for marked sockets only.
 */
import { generateKeyPairSync } from 'node:crypto';
import { isIPv4, type Socket } from 'node:net';
import tls, { type SecureContext, type TLSSocket } from 'node:tls';
import type AcmeClient from 'acme-client';
import { lazyModule } from '../lazy.js';

const acme = lazyModule<typeof AcmeClient>('acme-client');
import { InvalidOptionError } from '../errors.js';
import { listenForChallenges, validateListenerPort } from './listen.js';
import type { Logger } from '../logger.js';
import type { Identifier } from '../names.js';
import type { ChallengeContext, Solver } from './types.js';
import { DEFAULT_TLS_ALPN01_PORT } from '../defaults.js';
export { DEFAULT_TLS_ALPN01_PORT as DEFAULT_TLS_ALPN01_LISTENER_PORT };

export const ACME_TLS_ALPN_PROTOCOL = 'acme-tls/1';

/** Challenge contexts by server name, shared between the solver and the TLS server(s) answering it. */
export class TlsAlpnChallengeStore {
  readonly #contexts = new Map<string, SecureContext>();

  set(serverName: string, context: SecureContext): void {
    this.#contexts.set(storeKey(serverName), context);
  }

  get(serverName: string): SecureContext | undefined {
    return this.#contexts.get(storeKey(serverName));
  }

  /** Removes the name's context; with `context`, only when it is still that one (a newer challenge may have replaced it). */
  delete(serverName: string, context?: SecureContext): void {
    const key = storeKey(serverName);
    if (context === undefined || this.#contexts.get(key) === context) this.#contexts.delete(key);
  }

  has(serverName: string): boolean {
    return this.#contexts.has(storeKey(serverName));
  }

  get size(): number {
    return this.#contexts.size;
  }
}

function storeKey(serverName: string): string {
  const name = serverName.endsWith('.') ? serverName.slice(0, -1) : serverName;
  return name.toLowerCase();
}

/** True when the client offered exactly one protocol, `acme-tls/1`: only a CA's validator does that. */
export function isAcmeTlsAlpnOffer(protocols: readonly string[] | undefined): boolean {
  return protocols !== undefined && protocols.length === 1 && protocols[0] === ACME_TLS_ALPN_PROTOCOL;
}

const markedSockets = new WeakSet<TLSSocket>();

/** Records that this connection is a TLS-ALPN-01 validation (call from ALPNCallback). */
export function markAcmeTlsSocket(socket: TLSSocket): void {
  markedSockets.add(socket);
}

export function isMarkedAcmeTlsSocket(socket: TLSSocket): boolean {
  return markedSockets.has(socket);
}

/**
 * The server name a validator sends in SNI for an identifier: the name itself,
 * or for an IP address its reverse-mapping name (RFC 8738 section 6).
 */
export function challengeServerName(identifier: Identifier): string {
  if (identifier.type === 'dns') return identifier.value;
  if (isIPv4(identifier.value)) return `${identifier.value.split('.').reverse().join('.')}.in-addr.arpa`;
  const hex = expandIpv6(identifier.value).replaceAll(':', '');
  return `${[...hex].reverse().join('.')}.ip6.arpa`;
}

function expandIpv6(address: string): string {
  const [head = '', tail] = address.split('::');
  const headParts = head === '' ? [] : head.split(':');
  const tailParts = tail === undefined || tail === '' ? [] : tail.split(':');
  const missing = 8 - headParts.length - tailParts.length;
  return [...headParts, ...Array<string>(Math.max(0, missing)).fill('0'), ...tailParts].map((p) => p.padStart(4, '0')).join(':');
}

export type AlpnCallback = (this: TLSSocket, arg: { servername: string; protocols: string[] }) => string | undefined;

/**
 * Builds an ALPNCallback: a validator's `['acme-tls/1']` for a name with a
 * pending challenge marks the socket and selects `acme-tls/1`; anything else
 * goes to `ordinary` (the server's own protocol choice). A validator for a
 * name with no challenge gets no protocol, which aborts its handshake.
 */
export function createAcmeAlpnCallback(
  store: TlsAlpnChallengeStore,
  ordinary: (protocols: string[], servername: string) => string | undefined,
): AlpnCallback {
  return function ALPNCallback(this: TLSSocket, { servername, protocols }) {
    if (isAcmeTlsAlpnOffer(protocols)) {
      if (typeof servername === 'string' && store.has(servername)) {
        markAcmeTlsSocket(this);
        return ACME_TLS_ALPN_PROTOCOL;
      }
      return undefined;
    }
    return ordinary(protocols, servername);
  };
}

/** For an SNICallback: the challenge context when this socket was marked as a validation, else undefined. */
export function challengeContextForSocket(store: TlsAlpnChallengeStore, socket: TLSSocket, servername: string): SecureContext | undefined {
  return isMarkedAcmeTlsSocket(socket) ? store.get(servername) : undefined;
}

export interface TlsAlpnChallengeCertificate {
  context: SecureContext;
  /** The challenge certificate (PEM); no secret. */
  certificatePem: string;
}

/** Creates the self-signed challenge certificate for one identifier and key authorization. */
export async function createTlsAlpnChallengeCertificate(identifier: Identifier, keyAuthorization: string): Promise<TlsAlpnChallengeCertificate> {
  // A throwaway P-256 key: much cheaper than acme-client's RSA default, used for one handshake.
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const keyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  const authz = { identifier: { type: identifier.type, value: identifier.value } } as Parameters<typeof acme.crypto.createAlpnCertificate>[0];
  const [, cert] = await acme.crypto.createAlpnCertificate(authz, keyAuthorization, keyPem);
  const certificatePem = cert.toString();
  return { context: tls.createSecureContext({ key: keyPem, cert: certificatePem }), certificatePem };
}

export interface TlsAlpn01ListenerOptions {
  /** Default 443; 0 picks a free port (tests). */
  port?: number | undefined;
  /** Address to bind; '' or undefined = all interfaces. */
  host?: string | undefined;
  logger?: Logger | undefined;
}

/**
 * A TLS server that answers only TLS-ALPN-01 validations, for users with no
 * TLS server of their own on that port. Ordinary clients fail the handshake
 * (there is no certificate for them here).
 */
export class TlsAlpn01Listener {
  readonly #store: TlsAlpnChallengeStore;
  readonly #port: number;
  readonly #host: string | undefined;
  readonly #log: Logger | undefined;
  #server: tls.Server | undefined;
  readonly #sockets = new Set<Socket>();

  constructor(store: TlsAlpnChallengeStore, options: TlsAlpn01ListenerOptions = {}) {
    const port = options.port ?? DEFAULT_TLS_ALPN01_PORT;
    this.#store = store;
    this.#port = validateListenerPort(port, 'tlsAlpn01.port');
    this.#host = options.host === '' ? undefined : options.host;
    this.#log = options.logger?.child({ component: 'tls-alpn-01-listener' });
  }

  address(): { port: number; address: string } | undefined {
    const address = this.#server?.address();
    return address && typeof address === 'object' ? { port: address.port, address: address.address } : undefined;
  }

  async listen(): Promise<void> {
    if (this.#server) return;
    const store = this.#store;
    const sniCallback = function SNICallback(this: TLSSocket, servername: string, cb: (err: Error | null, ctx?: SecureContext) => void): void {
      const context = challengeContextForSocket(store, this, servername);
      if (context) cb(null, context);
      else cb(new Error('no certificate for this client'));
    };
    const server = tls.createServer({
      ALPNCallback: createAcmeAlpnCallback(store, () => undefined) as tls.TlsOptions['ALPNCallback'],
      SNICallback: sniCallback as tls.TlsOptions['SNICallback'],
      handshakeTimeout: 10_000,
    });
    // Validators close right after the handshake; nothing is read or written.
    server.on('secureConnection', (socket) => socket.end());
    server.on('connection', (socket) => {
      this.#sockets.add(socket);
      socket.once('close', () => this.#sockets.delete(socket));
    });
    server.on('tlsClientError', () => {
      // ordinary clients are refused by design; nothing to log
    });
    this.#server = server;
    try {
      await listenForChallenges(server, this.#port, this.#host);
    } catch (error) {
      this.#server = undefined;
      throw error;
    }
    server.on('error', (error) => this.#log?.warn({ err: error }, 'TLS-ALPN-01 listener error'));
    this.#log?.info({ port: this.address()?.port }, 'TLS-ALPN-01 listener started');
  }

  async close(): Promise<void> {
    const server = this.#server;
    if (!server) return;
    this.#server = undefined;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      for (const socket of this.#sockets) socket.destroy();
    });
    this.#log?.info('TLS-ALPN-01 listener stopped');
  }
}

export interface TlsAlpn01SolverOptions {
  /** Share with the TLS server that answers the validations (certkeeper's tlsOptions()); default a new store. */
  store?: TlsAlpnChallengeStore | undefined;
  /** Open a standalone listener while challenges are pending (default false: your TLS server answers). */
  listener?: boolean | undefined;
  /** Standalone listener port (default 443; 0 = any free port). */
  port?: number | undefined;
  /** Standalone listener address ('' = all interfaces). */
  host?: string | undefined;
  logger?: Logger | undefined;
}

export class TlsAlpn01Solver implements Solver {
  readonly store: TlsAlpnChallengeStore;
  readonly #listener: TlsAlpn01Listener | undefined;
  readonly #log: Logger | undefined;
  /** Contexts this solver put in the store, so cleanUp removes its own and not a newer one. */
  readonly #presented = new Map<string, SecureContext>();
  #pending = 0;
  #listenerOps: Promise<void> = Promise.resolve();

  constructor(options: TlsAlpn01SolverOptions = {}) {
    if (options.store !== undefined && !(options.store instanceof TlsAlpnChallengeStore)) {
      throw new InvalidOptionError('tlsAlpn01.store', 'must be a TlsAlpnChallengeStore');
    }
    if (options.listener !== undefined && typeof options.listener !== 'boolean') throw new InvalidOptionError('tlsAlpn01.listener', 'must be a boolean');
    this.store = options.store ?? new TlsAlpnChallengeStore();
    this.#log = options.logger?.child({ component: 'tls-alpn-01' });
    this.#listener = options.listener === true ? new TlsAlpn01Listener(this.store, { port: options.port, host: options.host, logger: options.logger }) : undefined;
  }

  listenerAddress(): { port: number; address: string } | undefined {
    return this.#listener?.address();
  }

  async present(challenge: ChallengeContext): Promise<void> {
    this.#pending++;
    const serverName = challengeServerName(challenge.identifier);
    const { context } = await createTlsAlpnChallengeCertificate(challenge.identifier, challenge.keyAuthorization);
    this.store.set(serverName, context);
    this.#presented.set(presentedKey(challenge), context);
    if (this.#listener) await this.#runListenerOp(() => this.#listener?.listen());
    this.#log?.debug({ identifier: challenge.identifier.value }, 'TLS-ALPN-01 challenge presented');
  }

  async cleanUp(challenge: ChallengeContext): Promise<void> {
    const key = presentedKey(challenge);
    const context = this.#presented.get(key);
    this.#presented.delete(key);
    if (context) this.store.delete(challengeServerName(challenge.identifier), context);
    this.#pending = Math.max(0, this.#pending - 1);
    if (this.#listener && this.#pending === 0) {
      await this.#runListenerOp(async () => {
        if (this.#pending === 0) await this.#listener?.close();
      });
    }
  }

  async close(): Promise<void> {
    if (this.#listener) await this.#runListenerOp(() => this.#listener?.close());
  }

  #runListenerOp(op: () => Promise<void> | undefined): Promise<void> {
    const run = this.#listenerOps.then(op);
    this.#listenerOps = run.catch(() => undefined);
    return run;
  }
}

function presentedKey(challenge: ChallengeContext): string {
  return `${challenge.identifier.value}\n${challenge.token}`;
}
