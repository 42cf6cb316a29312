/**
 * An existing Koa application gets HTTPS: certkeeper's middleware is used
 * first, and the app's callback is served on the HTTP port (challenges) and on
 * the HTTPS port (with the keeper's TLS options). See README.md.
 *
 *   CERTKEEPER_NAMES=example.com CERTKEEPER_AGREE_TO_TERMS=1 node --import tsx examples/koa/index.ts
 */
import http from 'node:http';
import https from 'node:https';
import Koa from 'koa';
import { CertKeeper } from '../../src/index.js';
import { challengeMiddleware } from '../../src/http/koa.js'; // 'certkeeper/koa' once installed
import { keeperOptionsFromEnv, listen, close } from '../_shared/env.js';

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
