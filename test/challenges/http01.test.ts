import assert from 'node:assert/strict';
import http from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { parseIdentifier } from '../../src/names.js';
import {
  createHttpChallengeResponder,
  Http01Solver,
  HttpChallengeMemory,
  identifierFromHost,
} from '../../src/challenges/http01.js';
import type { ChallengeContext } from '../../src/challenges/types.js';
import { challengeTokenKey } from '../../src/storage/layout.js';
import { MemoryBackend, MemoryStorage } from '../../src/storage/memory.js';
import { captureLogger } from '../helpers/logging.js';

const TOKEN = 'evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA';
const KEY_AUTH = `${TOKEN}.9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI`;
const ISSUER = 'pebble.test-dir';

function challenge(name: string, token = TOKEN, keyAuthorization = KEY_AUTH): ChallengeContext {
  return { identifier: parseIdentifier(name), type: 'http-01', token, keyAuthorization, issuerKey: ISSUER };
}

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

function request(port: number, path: string, host: string | undefined, method = 'GET'): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {};
    if (host !== undefined) headers.host = host;
    const req = http.request({ host: '127.0.0.1', port, path, method, headers, setHost: host === undefined ? false : undefined, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** A user's app with the responder mounted; anything it does not answer gets the app's 418. */
async function startApp(respond: (req: http.IncomingMessage, res: http.ServerResponse) => Promise<boolean>): Promise<http.Server> {
  // requireHostHeader: false so a request without Host reaches the responder.
  const server = http.createServer({ requireHostHeader: false }, (req, res) => {
    void respond(req, res).then((answered) => {
      if (answered) return;
      res.writeHead(418, { 'content-type': 'text/plain' });
      res.end('app');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

function portOf(server: http.Server): number {
  return (server.address() as AddressInfo).port;
}

async function closeServer(server: http.Server): Promise<void> {
  await new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

describe('identifierFromHost', () => {
  test('strips the port, lowercases, handles IPv6 brackets, rejects junk', () => {
    assert.equal(identifierFromHost('Example.TEST:8080'), 'example.test');
    assert.equal(identifierFromHost('example.test.'), 'example.test');
    assert.equal(identifierFromHost('[::1]:80'), '::1');
    assert.equal(identifierFromHost('[::1]'), '::1');
    assert.equal(identifierFromHost('127.0.0.1:5002'), '127.0.0.1');
    assert.equal(identifierFromHost('example.test:80x'), undefined);
    assert.equal(identifierFromHost('a b'), undefined);
    assert.equal(identifierFromHost('*.example.test'), undefined);
    assert.equal(identifierFromHost(''), undefined);
    assert.equal(identifierFromHost(undefined), undefined);
  });
});

describe('HTTP-01 responder', () => {
  const memory = new HttpChallengeMemory();
  let server: http.Server;
  let port: number;

  before(async () => {
    memory.set({ identifier: 'example.test', token: TOKEN, keyAuthorization: KEY_AUTH });
    memory.set({ identifier: '::1', token: TOKEN, keyAuthorization: KEY_AUTH });
    server = await startApp(createHttpChallengeResponder({ memory }).respond);
    port = portOf(server);
  });
  after(() => closeServer(server));

  test('answers GET for a held token and matching Host with the key authorization as text/plain', async () => {
    const reply = await request(port, `/.well-known/acme-challenge/${TOKEN}`, `Example.Test:${port}`);
    assert.equal(reply.status, 200);
    assert.equal(reply.headers['content-type'], 'text/plain');
    assert.equal(reply.body, KEY_AUTH);
  });

  test('answers HEAD with headers and no body', async () => {
    const reply = await request(port, `/.well-known/acme-challenge/${TOKEN}`, 'example.test', 'HEAD');
    assert.equal(reply.status, 200);
    assert.equal(reply.headers['content-length'], String(Buffer.byteLength(KEY_AUTH)));
    assert.equal(reply.body, '');
  });

  test('answers an IPv6 identifier by its bracketed Host', async () => {
    const reply = await request(port, `/.well-known/acme-challenge/${TOKEN}`, `[::1]:${port}`);
    assert.equal(reply.status, 200);
    assert.equal(reply.body, KEY_AUTH);
  });

  const refusals: Array<[string, string, string | undefined, string]> = [
    ['unknown token', '/.well-known/acme-challenge/unknownTOKEN_123', 'example.test', 'GET'],
    ['wrong Host', `/.well-known/acme-challenge/${TOKEN}`, 'other.test', 'GET'],
    ['Host that is not a name', `/.well-known/acme-challenge/${TOKEN}`, 'example.test/evil', 'GET'],
    ['missing Host', `/.well-known/acme-challenge/${TOKEN}`, undefined, 'GET'],
    ['POST', `/.well-known/acme-challenge/${TOKEN}`, 'example.test', 'POST'],
    ['PUT', `/.well-known/acme-challenge/${TOKEN}`, 'example.test', 'PUT'],
    ['token with a slash', `/.well-known/acme-challenge/${TOKEN}/x`, 'example.test', 'GET'],
    ['token with ..', `/.well-known/acme-challenge/../${TOKEN}`, 'example.test', 'GET'],
    ['token with ..', `/.well-known/acme-challenge/${TOKEN}..`, 'example.test', 'GET'],
    ['token with %2f', `/.well-known/acme-challenge/x%2f${TOKEN}`, 'example.test', 'GET'],
    ['non-base64url token', `/.well-known/acme-challenge/${TOKEN}=`, 'example.test', 'GET'],
    ['other path', `/.well-known/other/${TOKEN}`, 'example.test', 'GET'],
    ['prefix without token', '/.well-known/acme-challenge/', 'example.test', 'GET'],
  ];
  for (const [what, path, host, method] of refusals) {
    test(`falls through on ${what} (${path}) and echoes nothing`, async () => {
      const reply = await request(port, path, host, method);
      assert.equal(reply.status, 418, 'the app answered, not the responder');
      assert.equal(reply.body, 'app');
      assert.ok(!JSON.stringify(reply.headers).includes(TOKEN));
    });
  }
});

describe('HTTP-01 responder over HTTP/2', () => {
  test('reads the :authority pseudo-header as the Host', async () => {
    const memory = new HttpChallengeMemory();
    memory.set({ identifier: 'h2.example.test', token: TOKEN, keyAuthorization: KEY_AUTH });
    const responder = createHttpChallengeResponder({ memory });
    const server = http2.createServer((req, res) => {
      void responder.respond(req as unknown as http.IncomingMessage, res as unknown as http.ServerResponse).then((answered) => {
        if (!answered) {
          res.writeHead(418);
          res.end('app');
        }
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    const get = (authority: string): Promise<{ status: number; body: string }> =>
      new Promise((resolve, reject) => {
        const client = http2.connect(`http://127.0.0.1:${port}`);
        client.on('error', reject);
        const stream = client.request({ ':path': `/.well-known/acme-challenge/${TOKEN}`, ':authority': authority });
        let status = 0;
        let body = '';
        stream.on('response', (headers) => (status = Number(headers[':status'])));
        stream.on('data', (c: Buffer) => (body += c.toString()));
        stream.on('end', () => {
          client.close();
          resolve({ status, body });
        });
        stream.end();
      });
    try {
      assert.deepEqual(await get(`h2.example.test:${port}`), { status: 200, body: KEY_AUTH });
      assert.deepEqual(await get('other.example.test'), { status: 418, body: 'app' });
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});

describe('HTTP-01 through shared storage', () => {
  test('a second responder with its own memory answers a token filed in shared storage by a solver', async () => {
    const backend = new MemoryBackend();
    const solver = new Http01Solver({ storage: new MemoryStorage({ backend }), listener: false });
    const ch = challenge('shared.example.test');
    await solver.present(ch);
    const stored = JSON.parse((await new MemoryStorage({ backend }).load(challengeTokenKey(ISSUER, 'shared.example.test', TOKEN))).toString());
    assert.equal(stored.keyAuthorization, KEY_AUTH);

    const peer = createHttpChallengeResponder({ memory: new HttpChallengeMemory(), storage: new MemoryStorage({ backend }), issuerKeys: [ISSUER] });
    const otherIssuer = createHttpChallengeResponder({ memory: new HttpChallengeMemory(), storage: new MemoryStorage({ backend }), issuerKeys: ['elsewhere'] });
    const peerApp = await startApp(peer.respond);
    const otherApp = await startApp(otherIssuer.respond);
    try {
      const answered = await request(portOf(peerApp), `/.well-known/acme-challenge/${TOKEN}`, 'shared.example.test');
      assert.equal(answered.status, 200);
      assert.equal(answered.body, KEY_AUTH);
      const wrongHost = await request(portOf(peerApp), `/.well-known/acme-challenge/${TOKEN}`, 'example.test');
      assert.equal(wrongHost.status, 418);
      const notItsIssuer = await request(portOf(otherApp), `/.well-known/acme-challenge/${TOKEN}`, 'shared.example.test');
      assert.equal(notItsIssuer.status, 418);

      await solver.cleanUp(ch);
      assert.equal(await new MemoryStorage({ backend }).exists(challengeTokenKey(ISSUER, 'shared.example.test', TOKEN)), false);
      const afterCleanUp = await request(portOf(peerApp), `/.well-known/acme-challenge/${TOKEN}`, 'shared.example.test');
      assert.equal(afterCleanUp.status, 418);
    } finally {
      await closeServer(peerApp);
      await closeServer(otherApp);
    }
  });
});

describe('HTTP-01 standalone listener', () => {
  test('opens on the first present, answers, and closes after the last cleanUp', async () => {
    const solver = new Http01Solver({ port: 0, host: '127.0.0.1' });
    try {
      assert.equal(solver.listenerAddress(), undefined);
      const a = challenge('a.example.test', 'tokenA');
      const b = challenge('b.example.test', 'tokenB', 'tokenB.thumb');
      await Promise.all([solver.present(a), solver.present(b)]);
      const port = solver.listenerAddress()?.port;
      assert.ok(port);
      const reply = await request(port, '/.well-known/acme-challenge/tokenB', 'b.example.test');
      assert.equal(reply.body, 'tokenB.thumb');
      const other = await request(port, '/', 'b.example.test');
      assert.equal(other.status, 404);

      await solver.cleanUp(a);
      assert.equal(solver.listenerAddress()?.port, port, 'still open while b is pending');
      await solver.cleanUp(b);
      assert.equal(solver.listenerAddress(), undefined);
      await assert.rejects(request(port, '/', 'b.example.test'), { code: 'ECONNREFUSED' });
    } finally {
      await solver.close();
    }
  });

  test('listener: false never binds; the responder still answers from memory; the key authorization is never logged', async () => {
    const log = captureLogger('trace');
    const solver = new Http01Solver({ port: 0, host: '127.0.0.1', listener: false, logger: log.logger });
    const ch = challenge('mounted.example.test');
    await solver.present(ch);
    assert.equal(solver.listenerAddress(), undefined);
    const app = await startApp(solver.responder.respond);
    try {
      const reply = await request(portOf(app), `/.well-known/acme-challenge/${TOKEN}`, 'mounted.example.test');
      assert.equal(reply.body, KEY_AUTH);
    } finally {
      await solver.cleanUp(ch);
      await closeServer(app);
    }
    assert.match(log.text(), /answered HTTP-01 challenge/);
    assert.ok(!log.text().includes(KEY_AUTH));
  });

  test('a port that is taken gives a typed error from present', async () => {
    const blocker = http.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const solver = new Http01Solver({ port: portOf(blocker), host: '127.0.0.1' });
    const ch = challenge('busy.example.test');
    try {
      await assert.rejects(solver.present(ch), { code: 'ERR_CHALLENGE_FAILED' });
    } finally {
      await solver.cleanUp(ch);
      await solver.close();
      await closeServer(blocker);
    }
  });
});
