/**
 * HTTPS in one call: serveHttps() listens on the HTTP port (challenges and a
 * redirect) and on the HTTPS port (HTTP/2 and HTTP/1.1), obtains the
 * certificates and keeps them renewed. See README.md.
 *
 *   CERTKEEPER_NAMES=example.com CERTKEEPER_AGREE_TO_TERMS=1 node --import tsx examples/serve-https/index.ts
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { serveHttps } from 'certkeeper'
import { keeperOptionsFromEnv } from '../_shared/env.js';

const { names, options } = keeperOptionsFromEnv();

function app(req: IncomingMessage, res: ServerResponse): void {
  res.writeHead(200, { 'content-type': 'text/plain' });
  res.end(`hello from ${req.headers.host ?? req.headers[':authority'] ?? 'nowhere'} over HTTP/${req.httpVersion}\n`);
}

const service = await serveHttps(names, app, {
  ...options,
  httpPort: Number(process.env.HTTP_PORT ?? 80),
  httpsPort: Number(process.env.HTTPS_PORT ?? 443),
  ...(process.env.HOST ? { host: process.env.HOST } : {}),
});
console.log(`listening https://${names[0]}:${(service.httpsServer.address() as AddressInfo).port}/`);

async function shutdown(): Promise<void> {
  // A stuck connection must not keep the process alive for ever.
  setTimeout(() => process.exit(1), 15_000).unref();
  await service.close();
}
process.once('SIGTERM', () => void shutdown());
process.once('SIGINT', () => void shutdown());
