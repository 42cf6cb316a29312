/**
 * The user's own server on Pebble's HTTP-01 port, with certkeeper's handler
 * mounted (node:http, Express 5 and 4, Fastify 5, Koa 3 and 2): certificates
 * are obtained through it, the app's routes still answer, and requests that
 * are not valid challenge requests for a held token reach the app untouched.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import express from 'express';
import express4 from 'express4';
import Fastify from 'fastify';
import Koa from 'koa';
import Koa2 from 'koa2';
import { ClosedError } from '../../src/errors.js';
import { challengeMiddleware as expressMiddleware } from '../../src/http/express.js';
import { certkeeperChallenges } from '../../src/http/fastify.js';
import { challengeMiddleware as koaMiddleware } from '../../src/http/koa.js';
import { CertKeeper } from '../../src/manager/keeper.js';
import { FileStorage } from '../../src/storage/file.js';
import { challengeTokenKey, issuerKeyFromDirectoryUrl } from '../../src/storage/layout.js';
import { silentLogger } from '../helpers/logging.js';
import { startPebble, type PebbleHandle } from '../helpers/pebble.js';
import { skipUnlessInstalled } from '../helpers/system.js';
import { closeServer, listenOn, rawRequest } from './helpers.js';

const skip = skipUnlessInstalled('pebble', 'pebble-challtestsrv');
const CHALLENGE_PREFIX = '/.well-known/acme-challenge/';
const FALLBACK_BODY = 'app fallback';

interface RunningApp {
  server: http.Server;
  stop(): Promise<void>;
}

interface Framework {
  name: string;
  slug: string;
  /** Starts the user's app (routes `/`, `/.well-known/other`, and a 404 fallback marked x-app) with certkeeper mounted. */
  start(keeper: CertKeeper, port: number): Promise<RunningApp>;
  /** Whether stopping the app closes the keeper (the Fastify plugin with closeKeeper). */
  closesKeeper?: boolean;
}

function plainApp(req: IncomingMessage, res: ServerResponse): void {
  const path = (req.url ?? '').split('?')[0];
  if (req.method === 'GET' && path === '/') res.end('home');
  else if (req.method === 'GET' && path === '/.well-known/other') res.end('other');
  else res.writeHead(404, { 'x-app': 'fallback', 'content-type': 'text/plain' }).end(FALLBACK_BODY);
}

async function startNode(listener: http.RequestListener, port: number): Promise<RunningApp> {
  const server = http.createServer(listener);
  await listenOn(server, port);
  return { server, stop: () => closeServer(server) };
}

function expressApp(factory: typeof express, keeper: CertKeeper): http.RequestListener {
  const app = factory();
  app.use(expressMiddleware(keeper));
  app.get('/', (_req, res) => void res.send('home'));
  app.get('/.well-known/other', (_req, res) => void res.send('other'));
  app.use((_req, res) => void res.status(404).set('x-app', 'fallback').type('text/plain').send(FALLBACK_BODY));
  return app as unknown as http.RequestListener;
}

function koaApp(Factory: typeof Koa, keeper: CertKeeper): http.RequestListener {
  const app = new Factory();
  app.use(koaMiddleware(keeper));
  app.use((ctx) => {
    if (ctx.method === 'GET' && ctx.path === '/') ctx.body = 'home';
    else if (ctx.method === 'GET' && ctx.path === '/.well-known/other') ctx.body = 'other';
    else {
      ctx.status = 404;
      ctx.set('x-app', 'fallback');
      ctx.type = 'text/plain';
      ctx.body = FALLBACK_BODY;
    }
  });
  return app.callback();
}

const frameworks: Framework[] = [
  { name: 'node:http', slug: 'node', start: (keeper, port) => startNode(keeper.httpChallengeHandler(plainApp), port) },
  { name: 'Express 5', slug: 'express5', start: (keeper, port) => startNode(expressApp(express, keeper), port) },
  { name: 'Express 4', slug: 'express4', start: (keeper, port) => startNode(expressApp(express4, keeper), port) },
  {
    name: 'Fastify 5',
    slug: 'fastify',
    closesKeeper: true,
    async start(keeper, port) {
      const app = Fastify();
      await app.register(certkeeperChallenges, { keeper, closeKeeper: true });
      app.get('/', async () => 'home');
      app.get('/.well-known/other', async () => 'other');
      app.setNotFoundHandler((_request, reply) => void reply.code(404).header('x-app', 'fallback').type('text/plain').send(FALLBACK_BODY));
      await app.listen({ port, host: '127.0.0.1' });
      return { server: app.server, stop: () => app.close() };
    },
  },
  { name: 'Koa 3', slug: 'koa3', start: (keeper, port) => startNode(koaApp(Koa, keeper), port) },
  { name: 'Koa 2', slug: 'koa2', start: (keeper, port) => startNode(koaApp(Koa2, keeper), port) },
];

describe('challenge middleware in the user app, against Pebble', { skip }, () => {
  let pebble: PebbleHandle;
  let dir: string;

  before(async () => {
    pebble = await startPebble();
    dir = await mkdtemp(join(tmpdir(), 'certkeeper-middleware-'));
  });
  after(async () => {
    await pebble?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  for (const framework of frameworks) {
    test(`${framework.name}: obtains through the app, app routes answer, refusals fall through`, async () => {
      const storageRoot = join(dir, framework.slug);
      const keeper = new CertKeeper({
        ca: pebble.directoryUrl,
        caCertificates: pebble.pebbleCaPem,
        agreeToTerms: true,
        storage: new FileStorage({ root: storageRoot }),
        challenges: { http01: { port: pebble.httpPort, host: '127.0.0.1' }, tlsAlpn01: false },
        logger: silentLogger(),
      });
      let running: RunningApp | undefined;
      try {
        running = await framework.start(keeper, pebble.httpPort);
        let challengeHits = 0;
        running.server.on('request', (req: IncomingMessage) => {
          if (req.url?.startsWith(CHALLENGE_PREFIX)) challengeHits++;
        });

        // 1. A certificate through the app's own port (nothing else listens there).
        const name = `${framework.slug}.example.test`;
        await keeper.manageSync([name]);
        assert.equal(keeper.status(name).state, 'valid');
        assert.ok(challengeHits > 0, "Pebble's validation reached the app's server");

        // The app's own routes, including another /.well-known path.
        const port = pebble.httpPort;
        const home = await rawRequest(port, '/', { host: name });
        assert.deepEqual([home.status, home.body], [200, 'home']);
        const other = await rawRequest(port, '/.well-known/other', { host: name });
        assert.deepEqual([other.status, other.body], [200, 'other']);

        // 2. A token held in shared storage (as a peer process would file it).
        const identifier = 'refuse.example.test';
        const token = `Tk${framework.slug}_-0123456789abcdefghijklmnopqrstuvwxyz`;
        const keyAuthorization = `${token}.thumbprint-of-the-account-key`;
        await new FileStorage({ root: storageRoot }).store(
          challengeTokenKey(issuerKeyFromDirectoryUrl(pebble.directoryUrl), identifier, token),
          Buffer.from(JSON.stringify({ identifier, token, keyAuthorization })),
        );
        const path = CHALLENGE_PREFIX + token;
        const answered = await rawRequest(port, path, { host: `${identifier}:${port}` });
        assert.deepEqual([answered.status, answered.body], [200, keyAuthorization]);
        const head = await rawRequest(port, path, { method: 'HEAD', host: identifier });
        assert.deepEqual([head.status, head.body, head.headers['content-length']], [200, '', String(keyAuthorization.length)]);
        const normalised = await rawRequest(port, `${path}?x=1`, { host: 'Refuse.EXAMPLE.test.' });
        assert.deepEqual([normalised.status, normalised.body], [200, keyAuthorization]);

        const refusals: Array<{ why: string; path: string; method?: string; host?: string }> = [
          { why: 'unknown token', path: `${CHALLENGE_PREFIX}UnknownToken_0123456789abcdefghijklmnopqrstu` },
          { why: 'wrong Host', path, host: 'other.example.test' },
          { why: 'Host of a wildcard', path, host: '*.example.test' },
          { why: 'POST', path, method: 'POST' },
          { why: 'PUT', path, method: 'PUT' },
          { why: 'token with /', path: `${path}/x` },
          { why: 'token after ..', path: `${CHALLENGE_PREFIX}../acme-challenge/${token}` },
          { why: 'token with ..', path: `${path}..` },
          { why: 'token with %2f', path: `${CHALLENGE_PREFIX}x%2f..%2f${token}` },
          { why: 'token with %2F suffix', path: `${path}%2F` },
        ];
        for (const refusal of refusals) {
          const response = await rawRequest(port, refusal.path, { method: refusal.method ?? 'GET', host: refusal.host ?? identifier });
          assert.equal(response.status, 404, refusal.why);
          assert.equal(response.headers['x-app'], 'fallback', `${refusal.why}: the app answered`);
          assert.ok(!response.body.includes(token), `${refusal.why}: the token is not echoed`);
          assert.ok(!JSON.stringify(response.headers).includes(token), `${refusal.why}: no header holds the token`);
        }
      } finally {
        await running?.stop();
        if (framework.closesKeeper) {
          // Fastify with closeKeeper: closing the instance closed the keeper.
          assert.throws(() => keeper.manageAsync(['late.example.test']), ClosedError);
        }
        await keeper.close();
      }
    });
  }
});
