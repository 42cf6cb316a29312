/**
 * An existing node:http application gets HTTPS: certkeeper's challenge
 * handler sits in front of it on the HTTP port, and the same application is
 * served over HTTPS with the keeper's TLS options. See README.md.
 *
 *   CERTKEEPER_NAMES=example.com CERTKEEPER_AGREE_TO_TERMS=1 node --import tsx examples/node-http/index.ts
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import { CertKeeper } from '../../src/index.js';
import { keeperOptionsFromEnv, listen, close } from '../_shared/env.js';

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
