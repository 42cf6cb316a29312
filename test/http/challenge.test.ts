/**
 * The framework-neutral pieces (no CA involved): the synchronous pre-check,
 * the HTTPS redirect, where adapters get their responder, and option
 * validation of the adapters and of serveHttps.
 */
import assert from 'node:assert/strict';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import { after, before, describe, test } from 'node:test';
import express from 'express';
import Fastify from 'fastify';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { AbortedError, InvalidOptionError } from '../../src/errors.js';
import { mayBeChallengeRequest, redirectToHttps, resolveResponder, type ChallengeResponder } from '../../src/http/challenge.js';
import { challengeMiddleware as expressMiddleware } from '../../src/http/express.js';
import { certkeeperChallenges } from '../../src/http/fastify.js';
import { challengeMiddleware as koaMiddleware } from '../../src/http/koa.js';
import { serveHttps } from '../../src/serve-https.js';
import { CertKeeper } from '../../src/manager/keeper.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import { silentLogger } from '../helpers/logging.js';
import { closeServer, listenOn, rawRequest } from './helpers.js';

describe('mayBeChallengeRequest', () => {
  test('only GET and HEAD under the challenge path', () => {
    assert.equal(mayBeChallengeRequest('GET', '/.well-known/acme-challenge/abc'), true);
    assert.equal(mayBeChallengeRequest('HEAD', '/.well-known/acme-challenge/abc'), true);
    assert.equal(mayBeChallengeRequest('POST', '/.well-known/acme-challenge/abc'), false);
    assert.equal(mayBeChallengeRequest('GET', '/.well-known/other'), false);
    assert.equal(mayBeChallengeRequest('GET', '/'), false);
    assert.equal(mayBeChallengeRequest('GET', undefined), false);
  });
});

describe('redirectToHttps', () => {
  let server: http.Server;
  let port = 0;
  let httpsPort = 443;
  before(async () => {
    server = http.createServer((req, res) => redirectToHttps(req, res, httpsPort));
    port = await listenOn(server, 0);
  });
  after(() => closeServer(server));

  test('308 to the same host (port replaced) and path', async () => {
    httpsPort = 443;
    const response = await rawRequest(port, '/a/b?c=d', { host: 'Example.COM:8080' });
    assert.equal(response.status, 308);
    assert.equal(response.headers.location, 'https://example.com/a/b?c=d');
    httpsPort = 8443;
    const other = await rawRequest(port, '/', { host: '[::1]:80' });
    assert.equal(other.headers.location, 'https://[::1]:8443/');
  });

  test('400 for a Host that is not a name, with nothing echoed', async () => {
    for (const host of ['evil.example/path', 'a b', '*.example.com', 'example.com:http']) {
      const response = await rawRequest(port, '/x', { host });
      assert.equal(response.status, 400, host);
      assert.equal(response.headers.location, undefined);
      assert.ok(!response.body.includes('evil'));
    }
  });
});

describe('adapters', () => {
  const responder: ChallengeResponder = { respond: async () => false };

  test('take a keeper or a responder, and reject anything else naming the option', () => {
    assert.equal(resolveResponder(responder), responder);
    assert.equal(resolveResponder({ useExternalHttpChallengeResponder: () => responder }), responder);
    for (const bad of [undefined, null, {}, { respond: 1 }, { useExternalHttpChallengeResponder: () => ({}) }]) {
      assert.throws(() => resolveResponder(bad as never), (e: unknown) => e instanceof InvalidOptionError && e.option === 'keeper');
      assert.throws(() => expressMiddleware(bad as never), InvalidOptionError);
      assert.throws(() => koaMiddleware(bad as never), InvalidOptionError);
    }
  });

  test('a responder that fails reaches Express next(error) and Koa as a rejection', async () => {
    const failure = new Error('storage down');
    const failing: ChallengeResponder = { respond: () => Promise.reject(failure) };
    const seen = await new Promise<unknown>((resolve) => {
      expressMiddleware(failing)({ method: 'GET', url: '/.well-known/acme-challenge/x' } as IncomingMessage, {} as ServerResponse, resolve);
    });
    assert.equal(seen, failure);
    const ctx = { req: { method: 'GET', url: '/.well-known/acme-challenge/x' } as IncomingMessage, res: {} as ServerResponse };
    await assert.rejects(koaMiddleware(failing)(ctx, async () => undefined), failure);
  });

  test('the Fastify plugin validates closeKeeper', async () => {
    const app = Fastify();
    try {
      void app.register(certkeeperChallenges, { keeper: responder, closeKeeper: true });
      await assert.rejects(async () => app.ready(), (e: unknown) => e instanceof InvalidOptionError && e.option === 'closeKeeper');
    } finally {
      await app.close().catch(() => undefined);
    }
  });
});

describe('serveHttps options', () => {
  test('are validated before anything is opened', async () => {
    const app = (_req: IncomingMessage, res: ServerResponse): void => void res.end();
    const cases: Array<[string, () => Promise<unknown>]> = [
      ['names', () => serveHttps([], app)],
      ['app', () => serveHttps(['a.example'], 'app' as never)],
      ['httpsPort', () => serveHttps(['a.example'], app, { httpsPort: 70_000 })],
      ['httpPort', () => serveHttps(['a.example'], app, { httpPort: -1 })],
      ['http2', () => serveHttps(['a.example'], app, { http2: 'yes' as never })],
      ['headersTimeoutMs', () => serveHttps(['a.example'], app, { headersTimeoutMs: 90_000, requestTimeoutMs: 60_000 })],
      ['closeTimeoutMs', () => serveHttps(['a.example'], app, { closeTimeoutMs: 1.5 })],
    ];
    for (const [option, call] of cases) {
      await assert.rejects(call(), (e: unknown) => e instanceof InvalidOptionError && e.option === option, option);
    }
  });

  test('HTTP/2 is refused for an Express app, and off by default for one', async () => {
    const app = express();
    app.get('/', (req, res) => void res.send(`express ${req.httpVersion}`));
    await assert.rejects(
      serveHttps(['a.example'], app, { http2: true }),
      (e: unknown) => e instanceof InvalidOptionError && e.option === 'http2',
    );
    // The internal CA needs no network: a full start on free ports.
    const service = await serveHttps(['express.example.test'], app, {
      issuers: [{ type: 'internal', name: 'express-h2' }],
      storage: new MemoryStorage(),
      logger: silentLogger(),
      httpPort: 0,
      httpsPort: 0,
      host: '127.0.0.1',
    });
    try {
      assert.ok(service.httpsServer instanceof https.Server, 'an HTTP/1.1 server');
      const port = (service.httpsServer.address() as AddressInfo).port;
      const response = await new Promise<{ body: string; alpn: string | false | null }>((resolve, reject) => {
        const req = https.get({ host: '127.0.0.1', port, servername: 'express.example.test', rejectUnauthorized: false, ALPNProtocols: ['h2', 'http/1.1'], agent: false, headers: { host: 'express.example.test' } } as https.RequestOptions, (res) => {
          let body = '';
          res.on('data', (c: Buffer) => (body += c.toString()));
          res.on('end', () => resolve({ body, alpn: (res.socket as TLSSocket).alpnProtocol }));
        });
        req.on('error', reject);
      });
      assert.deepEqual(response, { body: 'express 1.1', alpn: 'http/1.1' });
    } finally {
      await service.close();
    }
  });

  test('an aborted signal stops start-up before anything is opened', async () => {
    await assert.rejects(serveHttps(['a.example'], (_req, res) => res.end(), { signal: AbortSignal.abort() }), AbortedError);
  });

  test('a keeper and keeper options together are refused, and the given keeper is left open', async () => {
    const keeper = new CertKeeper({ storage: new MemoryStorage(), logger: silentLogger() });
    try {
      await assert.rejects(
        serveHttps(['a.example'], (_req, res) => res.end(), { keeper, email: 'x@example.com' }),
        (e: unknown) => e instanceof InvalidOptionError && e.option === 'keeper',
      );
      assert.doesNotThrow(() => keeper.manageAsync([]), 'the given keeper is still open');
    } finally {
      await keeper.close();
    }
  });
});
