/**
 * serveHttps() against Pebble: HTTP/1.1 and HTTP/2 requests get the app's
 * answer with the managed certificate, plain HTTP is redirected with 308,
 * TLS-ALPN-01 is answered by the HTTPS server itself, close() is graceful
 * and idempotent, and a failed start closes what it opened.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import tls from 'node:tls';
import { ClosedError, ListenError } from '../../src/errors.js';
import { serveHttps } from '../../src/serve-https.js';
import { FileStorage } from '../../src/storage/file.js';
import { silentLogger } from '../helpers/logging.js';
import { startPebble, type PebbleHandle } from '../helpers/pebble.js';
import { skipUnlessInstalled } from '../helpers/system.js';
import { httpsGet } from '../helpers/tls-client.js';
import { closeServer, rawRequest } from './helpers.js';

const skip = skipUnlessInstalled('pebble', 'pebble-challtestsrv');

function portOf(server: { address(): AddressInfo | string | null }): number {
  return (server.address() as AddressInfo).port;
}

/** GET over HTTP/2 to 127.0.0.1:port with SNI and :authority `name`; the session stays open for the caller. */
function h2Get(port: number, name: string, ca: string, path = '/'): Promise<{ session: http2.ClientHttp2Session; status: number; body: string; serialNumber: string; alpn: string | false | null }> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`https://${name}:${port}`, {
      createConnection: () => tls.connect({ host: '127.0.0.1', port, servername: name, ca, ALPNProtocols: ['h2'] }),
    });
    session.on('error', reject);
    const stream = session.request({ ':path': path });
    let status = 0;
    const chunks: Buffer[] = [];
    stream.on('response', (headers) => {
      status = Number(headers[':status']);
    });
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('error', reject);
    stream.on('end', () => {
      const socket = session.socket as tls.TLSSocket;
      resolve({ session, status, body: Buffer.concat(chunks).toString(), serialNumber: String(socket.getPeerCertificate().serialNumber).toUpperCase(), alpn: socket.alpnProtocol });
    });
    stream.end();
  });
}

function connectRefused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code === 'ECONNREFUSED'));
  });
}

/** Sends an unfinished request head and resolves with what the server wrote before closing. */
function slowClient(socket: net.Socket): Promise<string> {
  return new Promise((resolve, reject) => {
    let received = '';
    socket.once(socket instanceof tls.TLSSocket ? 'secureConnect' : 'connect', () => socket.write('GET / HTTP/1.1\r\nHost: slow.example\r\n'));
    socket.on('data', (chunk: Buffer) => (received += chunk.toString()));
    socket.once('close', () => resolve(received));
    socket.once('error', reject);
  });
}

describe('serveHttps against Pebble', { skip }, () => {
  let pebble: PebbleHandle;
  let dir: string;
  let root: string;

  before(async () => {
    pebble = await startPebble();
    dir = await mkdtemp(join(tmpdir(), 'certkeeper-serve-'));
    root = await pebble.rootPem();
  });
  after(async () => {
    await pebble?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const keeperOptions = (sub: string) => ({
    ca: pebble.directoryUrl,
    caCertificates: pebble.pebbleCaPem,
    agreeToTerms: true,
    storage: new FileStorage({ root: join(dir, sub) }),
    logger: silentLogger(),
  });

  test('HTTP/1.1 and HTTP/2 get the app with the managed certificate, HTTP gets 308, close() drains', async () => {
    const name = 'serve.example.test';
    let releaseSlow!: () => void;
    const slowGate = new Promise<void>((resolve) => {
      releaseSlow = resolve;
    });
    let slowStarted!: () => void;
    const slowArrived = new Promise<void>((resolve) => {
      slowStarted = resolve;
    });
    const service = await serveHttps([name], (req, res) => {
      if (req.url === '/slow') {
        slowStarted();
        void slowGate.then(() => res.end('slow done'));
        return;
      }
      res.end(`app ${req.httpVersion} ${req.url}`);
    }, { ...keeperOptions('h2'), httpPort: pebble.httpPort, httpsPort: 0, host: '127.0.0.1' });
    let session: http2.ClientHttp2Session | undefined;
    try {
      const { keeper } = service;
      const status = keeper.status(name);
      assert.equal(status.state, 'valid');
      const port = portOf(service.httpsServer);

      const h1 = await httpsGet(port, name, root, '/one');
      assert.deepEqual([h1.status, h1.body], [200, 'app 1.1 /one']);
      assert.equal(h1.serialNumber, status.serialNumber?.toUpperCase());

      const h2 = await h2Get(port, name, root, '/two');
      session = h2.session;
      assert.deepEqual([h2.status, h2.body, h2.alpn], [200, 'app 2.0 /two', 'h2']);
      assert.equal(h2.serialNumber, status.serialNumber?.toUpperCase());

      const plain = await rawRequest(pebble.httpPort, '/some/path?q=1', { host: `${name}:${pebble.httpPort}` });
      assert.equal(plain.status, 308);
      assert.equal(plain.headers.location, `https://${name}:${port}/some/path?q=1`);
      const badHost = await rawRequest(pebble.httpPort, '/x', { host: 'bad host"' });
      assert.equal(badHost.status, 400);

      // A request in flight (HTTP/1.1 keep-alive) and an idle HTTP/2 session when close() starts.
      const agent = new https.Agent({ keepAlive: true });
      const slow = httpsGet(port, name, root, '/slow', agent);
      await slowArrived;
      const sessionClosed = new Promise<void>((resolve) => session?.once('close', () => resolve()));
      let closeDone = false;
      const closing = service.close().then(() => {
        closeDone = true;
      });
      assert.equal(service.close(), service.close(), 'close() is idempotent');
      assert.equal(service.httpsServer.listening, false);
      assert.ok(await connectRefused(port), 'no new HTTPS connections');
      assert.ok(await connectRefused(pebble.httpPort), 'no new HTTP connections');
      await sessionClosed;
      assert.equal(closeDone, false, 'close() waits for the request in flight');
      releaseSlow();
      const slowResponse = await slow;
      assert.deepEqual([slowResponse.status, slowResponse.body], [200, 'slow done']);
      await closing;
      agent.destroy();
      assert.throws(() => keeper.manageAsync(['late.example.test']), ClosedError, 'the keeper it created is closed');
    } finally {
      session?.destroy();
      releaseSlow();
      await service.close();
    }
  });

  test('HTTP/1.1 only, TLS-ALPN-01 answered by the HTTPS server, HTTP port redirects only', async () => {
    const name = 'alpn.example.test';
    const service = await serveHttps([name], (_req, res) => res.end('alpn app'), {
      ...keeperOptions('alpn'),
      challenges: { http01: false },
      http2: false,
      httpPort: 0,
      httpsPort: pebble.tlsPort,
      host: '127.0.0.1',
      headersTimeoutMs: 300,
      requestTimeoutMs: 600,
    });
    try {
      assert.equal(service.keeper.status(name).state, 'valid');
      const response = await httpsGet(pebble.tlsPort, name, root);
      assert.deepEqual([response.status, response.body], [200, 'alpn app']);
      const alpn = await new Promise<string | false | null>((resolve, reject) => {
        const socket = tls.connect({ host: '127.0.0.1', port: pebble.tlsPort, servername: name, ca: root, ALPNProtocols: ['h2', 'http/1.1'] }, () => {
          resolve(socket.alpnProtocol);
          socket.end();
        });
        socket.on('error', reject);
      });
      assert.equal(alpn, 'http/1.1');
      const httpPort = portOf(service.httpServer as http.Server);
      const challenge = await rawRequest(httpPort, '/.well-known/acme-challenge/abc', { host: name });
      assert.equal(challenge.status, 308);

      // A client that never finishes its headers is answered 408 and cut off, on both ports.
      assert.match(await slowClient(net.connect(httpPort, '127.0.0.1')), /^HTTP\/1\.1 408/);
      assert.match(await slowClient(tls.connect({ host: '127.0.0.1', port: pebble.tlsPort, servername: name, ca: root })), /^HTTP\/1\.1 408/);
    } finally {
      await service.close();
    }
  });

  test('a port in use fails start-up with ListenError and closes what was opened', async () => {
    const blocker = http.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', () => resolve()));
    const busyPort = portOf(blocker);
    try {
      await assert.rejects(
        serveHttps(['busy.example.test'], (_req, res) => res.end(), { ...keeperOptions('busy'), httpPort: pebble.httpPort, httpsPort: busyPort, host: '127.0.0.1' }),
        (error: unknown) => error instanceof ListenError && error.address === `127.0.0.1:${busyPort}`,
      );
      // The HTTP server it had opened is closed again: the port can be bound.
      const probe = http.createServer();
      await new Promise<void>((resolve, reject) => {
        probe.once('error', reject);
        probe.listen(pebble.httpPort, '127.0.0.1', () => resolve());
      });
      await closeServer(probe);
    } finally {
      await closeServer(blocker);
    }
  });
});
