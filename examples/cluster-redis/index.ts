/**
 * One instance of a fleet behind a load balancer. Every instance points at the
 * same Redis (and prefix), so the fleet shares certificates, the ACME account,
 * challenge tokens and locks: each certificate is ordered once, by whichever
 * instance takes its lock first, and any instance answers the CA's HTTP-01
 * request wherever the load balancer sends it. See README.md.
 *
 *   INSTANCE=1 HTTP_PORT=8081 HTTPS_PORT=8441 REDIS_URL=redis://127.0.0.1:6379 \
 *   CERTKEEPER_NAMES=example.com,www.example.com CERTKEEPER_AGREE_TO_TERMS=1 \
 *   node --import tsx examples/cluster-redis/index.ts
 */
import { readFileSync } from 'node:fs';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { RedisStorage } from '@certkeeper/storage-redis';
import { CertKeeper } from 'certkeeper';

const env = process.env;
const instance = env.INSTANCE ?? String(process.pid);
const names = (env.CERTKEEPER_NAMES ?? '').split(',').map((n) => n.trim()).filter((n) => n.length > 0);
if (names.length === 0) throw new Error('set CERTKEEPER_NAMES (comma-separated names pointing at the load balancer)');
if (env.CERTKEEPER_AGREE_TO_TERMS !== '1') throw new Error("set CERTKEEPER_AGREE_TO_TERMS=1 to accept the CA's terms of service");

const storage = new RedisStorage({
  url: env.REDIS_URL ?? 'redis://127.0.0.1:6379',
  // Every instance of one application uses the same prefix; another application on the same Redis uses its own.
  prefix: env.REDIS_PREFIX ?? 'certkeeper:',
  // Same key on every instance: private keys are encrypted in Redis (openssl rand -base64 32).
  ...(env.CERTKEEPER_ENCRYPTION_KEY ? { encryptionKey: env.CERTKEEPER_ENCRYPTION_KEY } : {}),
});

const keeper = new CertKeeper({
  // Staging unless told otherwise: its certificates are not trusted, but its rate limits forgive experiments.
  ca: env.CERTKEEPER_CA ?? 'letsencrypt-staging',
  ...(env.CERTKEEPER_CA_ROOT ? { caCertificates: readFileSync(env.CERTKEEPER_CA_ROOT, 'utf8') } : {}),
  ...(env.CERTKEEPER_EMAIL ? { email: env.CERTKEEPER_EMAIL } : {}),
  agreeToTerms: true,
  storage,
  // The HTTP server below answers challenges; TLS-ALPN-01 would need the CA's connection to reach the instance
  // that placed the order (its answer lives in that process only), which a load balancer does not guarantee.
  challenges: { http01: { listener: false }, tlsAlpn01: false },
});

function app(req: IncomingMessage, res: ServerResponse): void {
  res.writeHead(200, { 'content-type': 'text/plain' });
  res.end(`hello from instance ${instance} (${req.headers.host ?? 'no host'})\n`);
}

function listen(server: http.Server, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port, host: env.HOST || undefined }, () => resolve((server.address() as AddressInfo).port));
  });
}

// Plain HTTP: challenge requests are answered from Redis (whichever instance filed the token); the rest is redirected to HTTPS.
const httpServer = http.createServer(keeper.httpChallengeHandler());
const httpsServer = https.createServer(keeper.tlsOptions(), app);
const httpPort = await listen(httpServer, Number(env.HTTP_PORT ?? 80));
const httpsPort = await listen(httpsServer, Number(env.HTTPS_PORT ?? 443));

keeper.on('cert_obtained', (e) => console.log(`instance ${instance}: obtained ${e.names.join(', ')} (serial ${e.serialNumber})`));
keeper.on('cert_loaded', (e) => console.log(`instance ${instance}: loaded ${e.names.join(', ')} from Redis`));
await keeper.manageSync(names);
console.log(`instance ${instance}: serving ${names.join(', ')} on http :${httpPort} and https :${httpsPort}`);

async function shutdown(): Promise<void> {
  // A stuck connection must not keep the process alive for ever.
  setTimeout(() => process.exit(1), 15_000).unref();
  httpServer.close();
  httpsServer.close();
  httpServer.closeIdleConnections();
  httpsServer.closeIdleConnections();
  // Closing the keeper releases this instance's locks, so a peer can take over at once.
  await keeper.close();
  await storage.close();
}
process.once('SIGTERM', () => void shutdown());
process.once('SIGINT', () => void shutdown());
