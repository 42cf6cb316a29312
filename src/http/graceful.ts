/**
 * Graceful shutdown for the servers serveHttps() creates: stop accepting,
 * end idle HTTP/1 connections at once and busy ones after their response,
 * send HTTP/2 GOAWAY (open streams finish), then force whatever is left after
 * a deadline. Node's own server.close() does only part of this: it neither
 * ends a keep-alive connection whose request finishes later nor closes
 * HTTP/2 sessions.
 */
import type { IncomingMessage, Server as HttpServer, ServerResponse } from 'node:http';
import type { Http2SecureServer, Http2Session } from 'node:http2';
import type { Server as HttpsServer } from 'node:https';

export type TrackedServer = HttpServer | HttpsServer | Http2SecureServer;
type AnyRequestListener = (req: IncomingMessage, res: ServerResponse) => void;

export class GracefulCloser {
  readonly #server: TrackedServer;
  readonly #sessions = new Set<Http2Session>();
  readonly #busy = new Set<ServerResponse>();
  #closing = false;

  constructor(server: TrackedServer) {
    this.#server = server;
    server.on('session', (session: Http2Session) => {
      this.#sessions.add(session);
      session.once('close', () => this.#sessions.delete(session));
      if (this.#closing) session.close();
    });
  }

  /** Wraps the application so HTTP/1 responses are tracked and, once closing, end their connection. */
  wrap(listener: AnyRequestListener): AnyRequestListener {
    return (req, res) => {
      if (req.httpVersionMajor === 1) {
        if (this.#closing) {
          res.setHeader('connection', 'close');
        } else {
          this.#busy.add(res);
          res.once('close', () => this.#busy.delete(res));
          res.once('finish', () => {
            this.#busy.delete(res);
            // The connection turns idle right after this response; end it if we are shutting down.
            if (this.#closing) setImmediate(() => closeIdle(this.#server));
          });
        }
      }
      listener(req, res);
    };
  }

  /** Resolves once every connection has ended; forces them after `timeoutMs`. */
  async close(timeoutMs: number): Promise<void> {
    this.#closing = true;
    const server = this.#server;
    const closed = new Promise<void>((resolve) => {
      if (!server.listening) {
        resolve();
        return;
      }
      server.close(() => resolve());
    });
    for (const res of this.#busy) if (!res.headersSent) res.setHeader('connection', 'close');
    closeIdle(server);
    for (const session of this.#sessions) session.close();
    const force = setTimeout(() => {
      closeAll(server);
      for (const session of this.#sessions) session.destroy();
    }, timeoutMs);
    force.unref();
    try {
      await closed;
    } finally {
      clearTimeout(force);
    }
  }
}

function closeIdle(server: TrackedServer): void {
  (server as { closeIdleConnections?: () => void }).closeIdleConnections?.();
}

function closeAll(server: TrackedServer): void {
  (server as { closeAllConnections?: () => void }).closeAllConnections?.();
}
