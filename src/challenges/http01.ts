/**
 * HTTP-01 (RFC 8555 section 8.3): the solver files key authorizations in
 * memory and in storage, so any process sharing the storage can answer the
 * CA's request, and keeps the standalone listener open while a challenge is
 * pending unless the user's own server answers through `responder`.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { InvalidOptionError } from '../errors.js';
import { Closable } from '../lifecycle.js';
import type { Logger } from '../logger.js';
import { challengeTokenKey } from '../storage/layout.js';
import type { Storage } from '../storage/types.js';
import { DEFAULT_HTTP01_PORT } from '../defaults.js';
import {
  createHttpChallengeResponder,
  HttpChallengeMemory,
  type HttpChallengeEntry,
  type HttpChallengeResponder,
} from './http01-responder.js';
import { keyOfChallenge } from './challenge-key.js';
import { StandaloneListener } from './standalone-listener.js';
import type { ChallengeContext, Solver } from './types.js';
export {
  challengeTokenFromUrl,
  createHttpChallengeResponder,
  HTTP_CHALLENGE_PATH_PREFIX,
  HttpChallengeMemory,
  identifierFromHost,
  type HttpChallengeEntry,
  type HttpChallengeResponder,
  type HttpChallengeResponderOptions,
} from './http01-responder.js';

export interface Http01SolverOptions {
  /** Shared storage: tokens are filed there so peer processes can answer. */
  storage?: Storage | undefined;
  /** Share one memory with a responder mounted elsewhere; default a new one. */
  memory?: HttpChallengeMemory | undefined;
  /** Issuer keys a responder should look for in storage besides those this solver has presented for. */
  issuerKeys?: readonly string[] | undefined;
  /** Standalone listener port (default 80; 0 = any free port). */
  port?: number | undefined;
  /** Standalone listener address ('' = all interfaces, the default). */
  host?: string | undefined;
  /** Open the standalone listener while challenges are pending (default true). False when the user mounted the responder. */
  listener?: boolean | undefined;
  logger?: Logger | undefined;
}

/**
 * Presents HTTP-01 challenges: files the key authorization in memory and in
 * storage, and (unless disabled) holds the standalone listener open while any
 * challenge is pending.
 */
export class Http01Solver extends Closable implements Solver {
  readonly memory: HttpChallengeMemory;
  /** Answers from this solver's memory and storage; mount it in your own server. */
  readonly responder: HttpChallengeResponder;
  readonly #storage: Storage | undefined;
  readonly #issuerKeys: Set<string>;
  readonly #listener: StandaloneListener | undefined;
  readonly #log: Logger | undefined;
  #listenerDisabled = false;

  constructor(options: Http01SolverOptions = {}) {
    super('Http01Solver');
    this.memory = options.memory ?? new HttpChallengeMemory();
    this.#storage = options.storage;
    this.#issuerKeys = new Set(options.issuerKeys ?? []);
    this.#log = options.logger?.child({ component: 'http-01' });
    if (options.listener !== undefined && typeof options.listener !== 'boolean') throw new InvalidOptionError('http01.listener', 'must be a boolean');
    const responder = createHttpChallengeResponder({
      memory: this.memory,
      storage: this.#storage,
      issuerKeys: () => [...this.#issuerKeys],
      logger: options.logger,
    });
    this.responder = responder;
    const log = options.logger?.child({ component: 'http-01-listener' });
    this.#listener =
      options.listener === false
        ? undefined
        : new StandaloneListener({
            challenge: 'HTTP-01',
            createServer: () => createChallengeHttpServer(responder, log),
            port: options.port,
            defaultPort: DEFAULT_HTTP01_PORT,
            portOption: 'http01.port',
            host: options.host,
            logger: options.logger,
          });
  }

  /** The standalone listener's address while it is open. */
  listenerAddress(): AddressInfo | undefined {
    return this.#listener?.address();
  }

  async present(challenge: ChallengeContext): Promise<void> {
    this.assertOpen();
    const identifier = challenge.identifier.value;
    const entry: HttpChallengeEntry = { identifier, token: challenge.token, keyAuthorization: challenge.keyAuthorization };
    this.#issuerKeys.add(challenge.issuerKey);
    this.memory.set(entry);
    if (this.#storage) {
      // Deleted once validated; a crash loses the order it belongs to anyway, so it need not reach the disk.
      const value = Buffer.from(JSON.stringify(entry));
      await this.#storage.store(challengeTokenKey(challenge.issuerKey, identifier, challenge.token), value, { durable: false });
    }
    if (this.#listener && !this.#listenerDisabled) await this.#listener.hold(keyOfChallenge(challenge));
    this.#log?.debug({ identifier }, 'HTTP-01 challenge presented');
  }

  async cleanUp(challenge: ChallengeContext): Promise<void> {
    const identifier = challenge.identifier.value;
    this.memory.delete(identifier, challenge.token);
    try {
      if (this.#storage) await this.#storage.delete(challengeTokenKey(challenge.issuerKey, identifier, challenge.token));
    } catch (error) {
      // A leftover token file is harmless (it answers nothing once the authorization is done).
      this.#log?.warn({ err: error, identifier }, 'could not delete a challenge token from storage');
    }
    await this.#listener?.release(keyOfChallenge(challenge));
  }

  /**
   * Look for challenge tokens of this issuer in storage too, so this process
   * answers challenges that a peer sharing the storage started, before (or
   * without) presenting any itself.
   */
  addIssuerKey(issuerKey: string): void {
    this.#issuerKeys.add(issuerKey);
  }

  /** Never open the standalone listener again: the user's own server answers through `responder`. */
  disableListener(): void {
    this.#listenerDisabled = true;
  }

  /** Closes the standalone listener; clean-ups of challenges still pending keep working. */
  protected async onClose(): Promise<void> {
    await this.#listener?.close();
  }
}

/** A bare HTTP server answering only challenge requests (404 otherwise). */
function createChallengeHttpServer(responder: HttpChallengeResponder, log: Logger | undefined): http.Server {
  const server = http.createServer((req, res) => {
    responder.respond(req, res).then(
      (answered) => {
        if (!answered && !res.headersSent) {
          res.writeHead(404, { 'content-type': 'text/plain', 'content-length': 10 });
          res.end('Not Found\n');
        }
      },
      (error: unknown) => {
        log?.warn({ err: error }, 'HTTP-01 responder failed');
        if (!res.headersSent) res.writeHead(500);
        res.end();
      },
    );
  });
  // A CA's validator sends one small request; slow clients get little room.
  server.headersTimeout = 10_000;
  server.requestTimeout = 15_000;
  server.keepAliveTimeout = 5_000;
  return server;
}
