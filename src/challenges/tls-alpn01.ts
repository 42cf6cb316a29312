/**
 * TLS-ALPN-01 (RFC 8737). A self-signed certificate carrying the
 * acmeIdentifier extension is served only to a ClientHello whose ALPN list is
 * exactly `acme-tls/1` for a server name with a pending challenge; every other
 * client gets the normal certificate (or, on the standalone listener, none).
 *
 * The solver puts challenge contexts in a TlsAlpnChallengeStore; the TLS
 * servers read them through tls/alpn-challenge.ts, which holds the
 * validation branch of the ALPN and SNI callbacks for both.
 */
import { isIPv4 } from 'node:net';
import tls, { type SecureContext } from 'node:tls';
import { createAlpnChallengeCertificate } from '../acme/alpn-certificate.js';
import { InvalidOptionError } from '../errors.js';
import { Closable } from '../lifecycle.js';
import type { Logger } from '../logger.js';
import type { Identifier } from '../names.js';
import { createAcmeAlpnCallback, createAcmeSniCallback, type AlpnChallengeProvider } from '../tls/alpn-challenge.js';
import { DEFAULT_TLS_ALPN01_PORT } from '../defaults.js';
import { keyOfChallenge } from './challenge-key.js';
import { StandaloneListener } from './standalone-listener.js';
import type { ChallengeContext, Solver } from './types.js';

/** Challenge contexts by server name, shared between the solver and the TLS server(s) answering it. */
export class TlsAlpnChallengeStore implements AlpnChallengeProvider {
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

/**
 * A TLS server that answers only TLS-ALPN-01 validations. Ordinary clients
 * fail the handshake: there is no certificate for them here.
 */
function createChallengeTlsServer(store: TlsAlpnChallengeStore): tls.Server {
  const server = tls.createServer({
    ALPNCallback: createAcmeAlpnCallback(store, () => undefined) as tls.TlsOptions['ALPNCallback'],
    SNICallback: createAcmeSniCallback(store, (_servername, cb) => cb(new Error('no certificate for this client'))) as tls.TlsOptions['SNICallback'],
    handshakeTimeout: 10_000,
  });
  // Validators close right after the handshake; nothing is read or written.
  server.on('secureConnection', (socket) => socket.end());
  server.on('tlsClientError', () => {
    // ordinary clients are refused by design; nothing to log
  });
  return server;
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

export class TlsAlpn01Solver extends Closable implements Solver {
  readonly store: TlsAlpnChallengeStore;
  readonly #listener: StandaloneListener | undefined;
  readonly #log: Logger | undefined;
  /** Contexts this solver put in the store, so cleanUp removes its own and not a newer one. */
  readonly #presented = new Map<string, SecureContext>();

  constructor(options: TlsAlpn01SolverOptions = {}) {
    super('TlsAlpn01Solver');
    if (options.store !== undefined && !(options.store instanceof TlsAlpnChallengeStore)) {
      throw new InvalidOptionError('tlsAlpn01.store', 'must be a TlsAlpnChallengeStore');
    }
    if (options.listener !== undefined && typeof options.listener !== 'boolean') throw new InvalidOptionError('tlsAlpn01.listener', 'must be a boolean');
    const store = options.store ?? new TlsAlpnChallengeStore();
    this.store = store;
    this.#log = options.logger?.child({ component: 'tls-alpn-01' });
    this.#listener =
      options.listener === true
        ? new StandaloneListener({
            challenge: 'TLS-ALPN-01',
            createServer: () => createChallengeTlsServer(store),
            port: options.port,
            defaultPort: DEFAULT_TLS_ALPN01_PORT,
            portOption: 'tlsAlpn01.port',
            host: options.host,
            logger: options.logger,
          })
        : undefined;
  }

  listenerAddress(): { port: number; address: string } | undefined {
    const address = this.#listener?.address();
    return address ? { port: address.port, address: address.address } : undefined;
  }

  async present(challenge: ChallengeContext): Promise<void> {
    this.assertOpen();
    const { keyPem, certificatePem } = await createAlpnChallengeCertificate(challenge.identifier, challenge.keyAuthorization);
    const context = tls.createSecureContext({ key: keyPem, cert: certificatePem });
    this.store.set(challengeServerName(challenge.identifier), context);
    this.#presented.set(keyOfChallenge(challenge), context);
    await this.#listener?.hold(keyOfChallenge(challenge));
    this.#log?.debug({ identifier: challenge.identifier.value }, 'TLS-ALPN-01 challenge presented');
  }

  async cleanUp(challenge: ChallengeContext): Promise<void> {
    const key = keyOfChallenge(challenge);
    const context = this.#presented.get(key);
    this.#presented.delete(key);
    if (context) this.store.delete(challengeServerName(challenge.identifier), context);
    await this.#listener?.release(key);
  }

  /** Closes the standalone listener; clean-ups of challenges still pending keep working. */
  protected async onClose(): Promise<void> {
    await this.#listener?.close();
  }
}
