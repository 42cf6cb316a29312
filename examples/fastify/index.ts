/**
 * A Fastify application gets HTTPS. A Fastify instance listens on one port,
 * so there are two: the HTTPS one (the keeper's TLS options) and a small one
 * on the HTTP port with certkeeper's plugin, which answers challenges and
 * sends everything else to HTTPS. See README.md.
 *
 *   CERTKEEPER_NAMES=example.com CERTKEEPER_AGREE_TO_TERMS=1 node --import tsx examples/fastify/index.ts
 */
import type { AddressInfo } from 'node:net';
import Fastify from 'fastify';
import { CertKeeper, redirectToHttps } from 'certkeeper';
import { certkeeperChallenges } from 'certkeeper/fastify'
import { keeperOptionsFromEnv } from '../_shared/env.js';

const { names, options } = keeperOptionsFromEnv();
const host = process.env.HOST || '0.0.0.0';
const httpsPort = Number(process.env.HTTPS_PORT ?? 443);
const keeper = new CertKeeper(options);

// The application, on HTTPS.
// HTTP/1.1 only (Fastify's http2 option would need ['h2', 'http/1.1']).
const app = Fastify({ https: keeper.tlsOptions({ ALPNProtocols: ['http/1.1'] }) });
app.get('/', async (request) => `hello from ${request.hostname} over HTTPS\n`);

// The HTTP port: challenges, then a redirect for everything else.
const plain = Fastify();
await plain.register(certkeeperChallenges, { keeper });
plain.all('/*', (request, reply) => {
  reply.hijack();
  redirectToHttps(request.raw, reply.raw, httpsPort);
});

await plain.listen({ port: Number(process.env.HTTP_PORT ?? 80), host });
await app.listen({ port: httpsPort, host });
await keeper.manageSync(names);
console.log(`listening https://${names[0]}:${(app.server.address() as AddressInfo).port}/`);

async function shutdown(): Promise<void> {
  // A stuck connection must not keep the process alive for ever.
  setTimeout(() => process.exit(1), 15_000).unref();
  await Promise.all([plain.close(), app.close()]);
  await keeper.close();
}
process.once('SIGTERM', () => void shutdown());
process.once('SIGINT', () => void shutdown());
