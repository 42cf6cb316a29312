/**
 * An existing Express application gets HTTPS: certkeeper's middleware is
 * mounted first, and the same app is served on the HTTP port (challenges)
 * and on the HTTPS port (with the keeper's TLS options). See README.md.
 *
 *   CERTKEEPER_NAMES=example.com CERTKEEPER_AGREE_TO_TERMS=1 node --import tsx examples/express/index.ts
 */
import http from 'node:http';
import https from 'node:https';
import express from 'express';
import { CertKeeper } from 'certkeeper';
import { challengeMiddleware } from 'certkeeper/express'
import { keeperOptionsFromEnv, serveExample } from '../_shared/env.js';

const { names, options } = keeperOptionsFromEnv();
const host = process.env.HOST || undefined;
const keeper = new CertKeeper(options);

const app = express();
app.use(challengeMiddleware(keeper)); // first, at the root
app.get('/', (req, res) => {
  res.type('text/plain').send(`hello from ${req.hostname} over ${req.secure ? 'HTTPS' : 'HTTP'}\n`);
});

const httpServer = http.createServer(app);
// An https server speaks HTTP/1.1 only: say so, or a client offering h2 first could be given h2.
const httpsServer = https.createServer(keeper.tlsOptions({ ALPNProtocols: ['http/1.1'] }), app);

await serveExample(keeper, names, httpServer, httpsServer, host);
