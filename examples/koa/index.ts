/**
 * An existing Koa application gets HTTPS: certkeeper's middleware is used
 * first, and the app's callback is served on the HTTP port (challenges) and on
 * the HTTPS port (with the keeper's TLS options). See README.md.
 *
 *   CERTKEEPER_NAMES=example.com CERTKEEPER_AGREE_TO_TERMS=1 node --import tsx examples/koa/index.ts
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import Koa from 'koa';
import { CertKeeper, FileStorage, type CertKeeperOptions } from '../../src/index.js';
import { challengeMiddleware } from '../../src/http/koa.js'; // 'certkeeper/koa' once installed

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

const app = new Koa();
app.use(challengeMiddleware(keeper)); // first
app.use((ctx) => {
  ctx.type = 'text/plain';
  ctx.body = `hello from ${ctx.hostname} over ${ctx.secure ? 'HTTPS' : 'HTTP'}\n`;
});

const httpServer = http.createServer(app.callback());
// An https server speaks HTTP/1.1 only: say so, or a client offering h2 first could be given h2.
const httpsServer = https.createServer(keeper.tlsOptions({ ALPNProtocols: ['http/1.1'] }), app.callback());

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
