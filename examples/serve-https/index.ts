/**
 * HTTPS in one call: serveHttps() listens on the HTTP port (challenges and a
 * redirect) and on the HTTPS port (HTTP/2 and HTTP/1.1), obtains the
 * certificates and keeps them renewed. See README.md.
 *
 *   CERTKEEPER_NAMES=example.com CERTKEEPER_AGREE_TO_TERMS=1 node --import tsx examples/serve-https/index.ts
 */
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { FileStorage, type CertKeeperOptions } from '../../src/index.js';
import { serveHttps } from '../../src/http/serve-https.js'; // exported by 'certkeeper' once installed

function keeperOptionsFromEnv(): { names: string[]; options: CertKeeperOptions } {
  const env = process.env;
  const names = (env.CERTKEEPER_NAMES ?? '').split(',').map((n) => n.trim()).filter((n) => n.length > 0);
  if (names.length === 0) throw new Error('set CERTKEEPER_NAMES (comma-separated names pointing at this machine)');
  if (env.CERTKEEPER_AGREE_TO_TERMS !== '1') throw new Error("set CERTKEEPER_AGREE_TO_TERMS=1 to accept the CA's terms of service");
  const options: CertKeeperOptions = {
    // Staging unless told otherwise: its certificates are not trusted, but its rate limits forgive experiments.
    ca: env.CERTKEEPER_CA ?? 'letsencrypt-staging',
    agreeToTerms: true,
    ...(env.CERTKEEPER_CA_ROOT ? { caCertificates: readFileSync(env.CERTKEEPER_CA_ROOT, 'utf8') } : {}),
    ...(env.CERTKEEPER_EMAIL ? { email: env.CERTKEEPER_EMAIL } : {}),
    ...(env.CERTKEEPER_STORAGE ? { storage: new FileStorage({ root: env.CERTKEEPER_STORAGE }) } : {}),
  };
  return { names, options };
}

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
