/**
 * An existing node:http application gets HTTPS: certkeeper's challenge
 * handler sits in front of it on the HTTP port, and the same application is
 * served over HTTPS with the keeper's TLS options. See README.md.
 *
 *   CERTKEEPER_NAMES=example.com CERTKEEPER_AGREE_TO_TERMS=1 node --import tsx examples/node-http/index.ts
 */
import { readFileSync } from 'node:fs';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { CertKeeper, FileStorage, type CertKeeperOptions } from '../../src/index.js';

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

function listen(server: http.Server, port: number, host: string | undefined): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port, host }, () => resolve((server.address() as AddressInfo).port));
  });
}

function close(server: http.Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeIdleConnections();
  });
}

const { names, options } = keeperOptionsFromEnv();
const host = process.env.HOST || undefined;
const keeper = new CertKeeper(options);

// The application: any (req, res) listener.
function app(req: IncomingMessage, res: ServerResponse): void {
  const secure = 'encrypted' in req.socket;
  res.writeHead(200, { 'content-type': 'text/plain' });
  res.end(`hello from ${req.headers.host ?? 'nowhere'} over ${secure ? 'HTTPS' : 'HTTP'}\n`);
}

// Port 80: challenge requests are answered, everything else reaches the app.
const httpServer = http.createServer(keeper.httpChallengeHandler(app));
// An https server speaks HTTP/1.1 only: say so, or a client offering h2 first could be given h2.
const httpsServer = https.createServer(keeper.tlsOptions({ ALPNProtocols: ['http/1.1'] }), app);

await listen(httpServer, Number(process.env.HTTP_PORT ?? 80), host);
const httpsPort = await listen(httpsServer, Number(process.env.HTTPS_PORT ?? 443), host);
await keeper.manageSync(names);
console.log(`listening https://${names[0]}:${httpsPort}/`);

async function shutdown(): Promise<void> {
  // A stuck connection must not keep the process alive for ever.
  setTimeout(() => process.exit(1), 15_000).unref();
  await Promise.all([close(httpServer), close(httpsServer)]);
  await keeper.close();
}
process.once('SIGTERM', () => void shutdown());
process.once('SIGINT', () => void shutdown());
