/**
 * An existing node:http application gets HTTPS: certkeeper's challenge
 * handler sits in front of it on the HTTP port, and the same application is
 * served over HTTPS with the keeper's TLS options. See README.md.
 *
 *   CERTKEEPER_NAMES=example.com CERTKEEPER_AGREE_TO_TERMS=1 node --import tsx examples/node-http/index.ts
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import { CertKeeper } from 'certkeeper';
import { keeperOptionsFromEnv, serveExample } from '../_shared/env.js';

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

await serveExample(keeper, names, httpServer, httpsServer, host);
