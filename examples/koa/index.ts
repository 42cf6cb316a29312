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
import { CertKeeper } from 'certkeeper';
import { challengeMiddleware } from 'certkeeper/koa'
import { keeperOptionsFromEnv, serveExample } from '../_shared/env.js';

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

await serveExample(keeper, names, httpServer, httpsServer, host);
