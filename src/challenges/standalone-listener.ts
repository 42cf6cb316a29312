/**
 * The standalone challenge listener, one for HTTP-01 and TLS-ALPN-01: a server
 * of certkeeper's own on the challenge port, for users with no server there.
 *
 * It is open only while a challenge needs it. Each presented challenge holds
 * it open; the last one released closes the server, so no port stays bound
 * between orders. Opening and closing run one at a time, so a close never
 * races a start.
 */
import type { AddressInfo, Server, Socket } from 'node:net';
import { ChallengeListenerError, ClosedError } from '../errors.js';
import { Closable } from '../lifecycle.js';
import { listen } from '../listen.js';
import type { Logger } from '../logger.js';
import { port as validPort } from '../validate.js';

export interface StandaloneListenerOptions {
  /** The challenge type it answers, as logs name it: `HTTP-01`, `TLS-ALPN-01`. */
  challenge: string;
  /** Builds the server for each opening; it answers challenges only. */
  createServer: () => Server;
  /** The user's port option; 0 picks a free port (tests). */
  port?: number | undefined;
  /** The port when the user gave none (80 or 443). */
  defaultPort: number;
  /** The option's name in errors: `http01.port`. */
  portOption: string;
  /** Address to bind; '' or undefined = all interfaces. */
  host?: string | undefined;
  logger?: Logger | undefined;
}

export class StandaloneListener extends Closable {
  readonly #challenge: string;
  readonly #createServer: () => Server;
  readonly #port: number;
  readonly #host: string | undefined;
  readonly #log: Logger | undefined;
  readonly #sockets = new Set<Socket>();
  #server: Server | undefined;
  /** Who holds the server open: one key per presented challenge. */
  readonly #holders = new Set<string>();
  #steps: Promise<void> = Promise.resolve();

  constructor(options: StandaloneListenerOptions) {
    super(`${options.challenge} listener`);
    this.#challenge = options.challenge;
    this.#createServer = options.createServer;
    this.#port = validPort(options.port, options.portOption) ?? options.defaultPort;
    this.#host = options.host === '' ? undefined : options.host;
    this.#log = options.logger?.child({ component: `${options.challenge.toLowerCase()}-listener` });
  }

  /** The bound address while open. */
  address(): AddressInfo | undefined {
    const address = this.#server?.address();
    return address && typeof address === 'object' ? address : undefined;
  }

  /**
   * Opens the server unless it is open already, and keeps it open for `holder`
   * (a challenge key) until release(holder). Holding twice is holding once. A
   * bind failure (port taken, no permission) rejects with
   * ChallengeListenerError and holds nothing.
   */
  async hold(holder: string): Promise<void> {
    this.assertOpen();
    if (this.#holders.has(holder)) return;
    this.#holders.add(holder);
    try {
      await this.#inTurn(() => this.#open());
    } catch (error) {
      this.#holders.delete(holder);
      throw error;
    }
  }

  /** Lets go of the server for `holder`; the last holder's release closes it. Unknown holders are ignored. */
  async release(holder: string): Promise<void> {
    if (!this.#holders.delete(holder)) return;
    await this.#inTurn(async () => {
      if (this.#holders.size === 0) await this.#shut();
    });
  }

  protected async onClose(): Promise<void> {
    await this.#inTurn(() => this.#shut());
  }

  #inTurn(step: () => Promise<void>): Promise<void> {
    const run = this.#steps.then(step);
    this.#steps = run.catch(() => undefined);
    return this.track(run);
  }

  async #open(): Promise<void> {
    if (this.#server) return;
    // A start queued behind close() must not bind a port nobody will release.
    if (this.closed) throw new ClosedError(`${this.#challenge} listener`);
    const server = this.#createServer();
    server.on('connection', (socket: Socket) => {
      this.#sockets.add(socket);
      socket.once('close', () => this.#sockets.delete(socket));
    });
    await bind(server, this.#port, this.#host);
    server.on('error', (error) => this.#log?.warn({ err: error }, `${this.#challenge} listener error`));
    this.#server = server;
    this.#log?.info({ port: this.address()?.port }, `${this.#challenge} listener started`);
  }

  async #shut(): Promise<void> {
    const server = this.#server;
    if (!server) return;
    this.#server = undefined;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      // Validators hang up by themselves; anyone else still connected is cut off.
      for (const socket of this.#sockets) socket.destroy();
    });
    this.#log?.info(`${this.#challenge} listener stopped`);
  }
}

async function bind(server: Server, port: number, host: string | undefined): Promise<void> {
  try {
    await listen(server, { port, host });
  } catch (error) {
    throw new ChallengeListenerError(`${host ?? '*'}:${port}`, (error as Error).message, { cause: error });
  }
}
