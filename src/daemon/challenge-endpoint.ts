/**
 * The daemon's small HTTP endpoint for HTTP-01 behind a web server that owns
 * port 80: nginx forwards `location /.well-known/acme-challenge/ {
 * proxy_pass http://127.0.0.1:<port>; }` here, and the keeper's challenge
 * handler answers. Anything else gets 404: this is not a web server.
 */
import http from 'node:http';
import { ListenError } from '../errors.js';
import { listen } from '../listen.js';
import type { Logger } from '../logger.js';

/** keeper.httpChallengeHandler(next): answers a pending challenge, passes anything else to `next`. */
export type ChallengeHandler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

export function notFound(_req: http.IncomingMessage, res: http.ServerResponse): void {
  res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
}

export interface ChallengeEndpoint {
  /** host:port actually bound (port 0 picks a free one). */
  readonly address: { host: string; port: number };
  close(): Promise<void>;
}

export async function openChallengeEndpoint(handler: ChallengeHandler, port: number, host: string, logger: Logger): Promise<ChallengeEndpoint> {
  const server = http.createServer((req, res) => {
    if (req.url?.startsWith('/.well-known/acme-challenge/')) handler(req, res);
    else notFound(req, res);
  });
  server.keepAliveTimeout = 5_000;
  try {
    await listen(server, { port, host });
  } catch (error) {
    throw new ListenError(`${host}:${port}`, 'the HTTP-01 proxy endpoint', { cause: error, reason: (error as NodeJS.ErrnoException).code ?? (error as Error).message });
  }
  const bound = server.address() as { address: string; port: number };
  logger.info({ host: bound.address, port: bound.port }, 'HTTP-01 endpoint for the proxy listening');
  let closing: Promise<void> | undefined;
  return {
    address: { host: bound.address, port: bound.port },
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}
