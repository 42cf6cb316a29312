/**
 * On-demand TLS through `askUrl` under abuse, against a real local ask endpoint that counts the requests and
 * connections it sees: random-SNI floods whose clients hang up, an endpoint that hangs, resets or is down,
 * redirects, the rate limit checked before asking, and the name's encoding in the query. The internal
 * issuer stands in for the CA (counted: any order would show).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import { describe, test } from 'node:test';
import type { OnDemandDeniedEvent } from '../../src/events.js';
import { InternalIssuer } from '../../src/issuers/internal.js';
import type { IssueRequest, Issuer, IssuedCertificate } from '../../src/issuers/types.js';
import { CertKeeper } from '../../src/manager/keeper.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import type { Storage } from '../../src/storage/types.js';
import { silentLogger } from '../helpers/logging.js';
import { closeServer, listen, waitUntil } from './helpers.js';
import { clientHello, clientHelloThenClose, sendClientHello } from './raw-client-hello.js';
import { FakeClock } from '../../src/testing/fake-clock.js';

class CountingIssuer implements Issuer {
  readonly key: string;
  readonly #inner: InternalIssuer;
  calls: string[] = [];
  constructor(storage: Storage) {
    this.#inner = new InternalIssuer({ storage, logger: silentLogger() });
    this.key = this.#inner.key;
  }
  issue(request: IssueRequest): Promise<IssuedCertificate> {
    this.calls.push(request.identifiers.map((i) => i.value).join(','));
    return this.#inner.issue(request);
  }
}

type AskMode = 'allow' | 'deny' | 'hang' | 'redirect' | 'reset';

/** A real HTTP ask endpoint: counts requests (with their raw URLs) and open connections, and answers as `mode` says. */
class AskServer {
  mode: AskMode = 'allow';
  readonly urls: string[] = [];
  open = 0;
  peakOpen = 0;
  connections = 0;
  readonly #sockets = new Set<net.Socket>();
  readonly #server = http.createServer((req, res) => {
    this.urls.push(req.url ?? '');
    if ((req.url ?? '').startsWith('/redirected')) {
      res.writeHead(200).end();
      return;
    }
    switch (this.mode) {
      case 'allow':
        res.writeHead(200).end('ok');
        return;
      case 'deny':
        res.writeHead(403).end();
        return;
      case 'redirect':
        res.writeHead(302, { location: `http://127.0.0.1:${this.port}/redirected?domain=x` }).end();
        return;
      case 'reset':
        req.socket.destroy();
        return;
      case 'hang':
        return; // never answers; the connection stays open until the client goes away
    }
  });
  port = 0;

  async start(): Promise<this> {
    this.#server.on('connection', (socket) => {
      this.connections++;
      this.open++;
      this.peakOpen = Math.max(this.peakOpen, this.open);
      this.#sockets.add(socket);
      socket.on('close', () => {
        this.open--;
        this.#sockets.delete(socket);
      });
    });
    this.port = await listen(this.#server);
    return this;
  }

  url(path = '/check'): string {
    return `http://127.0.0.1:${this.port}${path}`;
  }

  /** The `domain` values of the requests seen (parsed as a server would). */
  domains(): string[] {
    return this.urls.filter((u) => u.startsWith('/check')).map((u) => new URL(u, 'http://x').searchParams.getAll('domain').join('|'));
  }

  async stop(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    await closeServer(this.#server);
  }
}

interface Keeper {
  keeper: CertKeeper;
  issuer: CountingIssuer;
  denials: OnDemandDeniedEvent[];
  port: number;
  close(): Promise<void>;
}

async function keeperWithAsk(onDemand: Record<string, unknown>, clock?: FakeClock): Promise<Keeper> {
  const storage = new MemoryStorage();
  const issuer = new CountingIssuer(storage);
  const keeper = new CertKeeper({
    storage,
    issuers: [issuer],
    challenges: { http01: false, tlsAlpn01: { listener: false } },
    onDemand: onDemand as never,
    logger: silentLogger(),
    ...(clock ? { clock } : {}),
  });
  const denials: OnDemandDeniedEvent[] = [];
  keeper.on('on_demand_denied', (event) => denials.push(event));
  const server = tls.createServer(keeper.tlsOptions());
  const port = await listen(server);
  return {
    keeper,
    issuer,
    denials,
    port,
    close: async () => {
      await closeServer(server);
      await keeper.close();
    },
  };
}

const randomName = (): string => `${randomBytes(6).toString('hex')}.flood.example.test`;

/** Runs `count` calls of `fn`, `parallel` at a time. */
async function pool(count: number, parallel: number, fn: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: parallel }, async () => {
    while (next < count) await fn(next++);
  }));
}

/** A client that completes the ClientHello and keeps the connection open until `hangUp()`; `answer` says how the server replied. */
function waitingClient(port: number, name: string): { answer: Promise<'alert' | 'handshake' | 'closed'>; hangUp(): void } {
  const socket = net.connect({ host: '127.0.0.1', port });
  const answer = new Promise<'alert' | 'handshake' | 'closed'>((resolve) => {
    socket.on('connect', () => socket.write(Buffer.from(sniHello(name))));
    socket.on('data', (data: Buffer) => resolve(data[0] === 0x15 ? 'alert' : data[0] === 0x16 ? 'handshake' : 'closed'));
    socket.on('error', () => resolve('closed'));
    socket.on('close', () => resolve('closed'));
  });
  return { answer, hangUp: () => socket.destroy() };
}

const sniHello = (name: string): Buffer => clientHello(Buffer.from(name));

describe('fault: on-demand askUrl under abuse', () => {
  test('1,500 ClientHellos that hang up after 5 ms against a hanging ask endpoint: asks capped, each aborted with its client', { timeout: 120_000 }, async (t) => {
    const ask = await new AskServer().start();
    ask.mode = 'hang';
    // An ask timeout far beyond the test: only the clients going away can end these requests.
    const k = await keeperWithAsk({ askUrl: ask.url(), askTimeoutMs: 3_600_000, timeoutMs: 3_600_000, maxConcurrentDecisions: 16 });
    try {
      await pool(1_500, 150, () => clientHelloThenClose(k.port, Buffer.from(randomName()), 5));
      t.diagnostic(`${ask.urls.length} ask requests, at most ${ask.peakOpen} open at once, ${ask.open} open when the last client left`);
      assert.ok(ask.peakOpen <= 16, `at most maxConcurrentDecisions ask requests open at once (saw ${ask.peakOpen})`);
      assert.ok(ask.urls.length >= 1, 'the flood did reach the ask endpoint');
      // Every ask request belonged to a client that is gone: all of them are closed, long before any timeout.
      await waitUntil(() => ask.open === 0, 'every outbound ask request closed', 30_000);
      assert.deepEqual(k.issuer.calls, [], 'no order');
      assert.equal(k.keeper.list().length, 0);
    } finally {
      await k.close();
      await ask.stop();
    }
  });

  test('beyond maxConcurrentDecisions a handshake fails at once, without asking; the slots free when their clients leave', { timeout: 60_000 }, async () => {
    const ask = await new AskServer().start();
    ask.mode = 'hang';
    const k = await keeperWithAsk({ askUrl: ask.url(), askTimeoutMs: 3_600_000, timeoutMs: 3_600_000, maxConcurrentDecisions: 4 });
    try {
      const holders = Array.from({ length: 4 }, (_, i) => waitingClient(k.port, `hold${i}.example.test`));
      await waitUntil(() => ask.urls.length === 4, 'four ask requests in flight');
      // Four decisions hang: the next six handshakes are refused while those four are still open.
      const extra = Array.from({ length: 6 }, (_, i) => waitingClient(k.port, `extra${i}.example.test`));
      const answers = await Promise.all(extra.map((c) => c.answer));
      assert.ok(answers.every((a) => a !== 'handshake'), `refused, not queued: ${answers.join(', ')}`);
      assert.equal(ask.open, 4, 'the four hanging asks are still open: the refusals did not wait for them');
      assert.equal(ask.urls.length, 4, 'no ask beyond the cap');
      assert.equal(k.denials.filter((d) => /too many on-demand decisions/.test(d.reason)).length, 6);
      for (const c of extra) c.hangUp();

      for (const c of holders) c.hangUp();
      await waitUntil(() => ask.open === 0, 'the asks of departed clients closed', 30_000);
      // The slots are free again: a new name is asked about.
      const again = waitingClient(k.port, 'after.example.test');
      await waitUntil(() => ask.urls.length === 5, 'a fifth ask once the slots are free');
      again.hangUp();
      await waitUntil(() => ask.open === 0, 'the fifth ask closed with its client', 30_000);
      assert.deepEqual(k.issuer.calls, []);
    } finally {
      await k.close();
      await ask.stop();
    }
  });

  test('an exhausted order rate limit is checked before asking: 30 allowed names, 10 orders, 10 asks', { timeout: 60_000 }, async () => {
    const ask = await new AskServer().start();
    const k = await keeperWithAsk({ askUrl: ask.url(), rateLimit: { capacity: 10, refillAmount: 1, refillIntervalMs: 3_600_000 } });
    try {
      const names = Array.from({ length: 30 }, (_, i) => `rl${i}.example.test`);
      const served: boolean[] = [];
      for (const name of names) served.push((await sendClientHello(k.port, Buffer.from(name))) === 'handshake');
      assert.deepEqual(served, [...Array(10).fill(true), ...Array(20).fill(false)]);
      assert.equal(k.issuer.calls.length, 10, '10 orders');
      assert.deepEqual(ask.domains(), names.slice(0, 10), 'no decision is spent on a name that could not be ordered');
      assert.deepEqual(k.denials.map((d) => d.reason), Array(20).fill('on-demand rate limit reached'));
    } finally {
      await k.close();
      await ask.stop();
    }
  });

  test('a concurrent flood of 2,000 allowed names with a rate limit of 10: 10 orders, asks bounded by what was in flight', { timeout: 120_000 }, async (t) => {
    const ask = await new AskServer().start();
    const k = await keeperWithAsk({ askUrl: ask.url(), rateLimit: { capacity: 10, refillAmount: 1, refillIntervalMs: 3_600_000 } });
    try {
      const parallel = 20;
      await pool(2_000, parallel, () => sendClientHello(k.port, Buffer.from(randomName())));
      t.diagnostic(`${ask.urls.length} ask requests for ${k.issuer.calls.length} orders`);
      assert.equal(k.issuer.calls.length, 10, '10 orders');
      // Only handshakes that were already deciding when the last token went can have asked beyond the 10.
      assert.ok(ask.urls.length <= 10 + parallel, `${ask.urls.length} ask requests`);
    } finally {
      await k.close();
      await ask.stop();
    }
  });

  test('answers are cached for decisionCacheTtlMs: one ask per name for allow and deny, asked again after the TTL', { timeout: 60_000 }, async () => {
    const ask = await new AskServer().start();
    const clock = new FakeClock(Date.now());
    const k = await keeperWithAsk({ askUrl: ask.url(), decisionCacheTtlMs: 600_000 }, clock);
    try {
      ask.mode = 'deny';
      for (let i = 0; i < 3; i++) {
        assert.notEqual(await sendClientHello(k.port, Buffer.from('denied.example.test')), 'handshake');
        // Past the TLS cache's own short memory of names it found nothing for (10 s): the decision cache answers.
        await clock.advance(11_000);
      }
      assert.deepEqual(ask.domains(), ['denied.example.test']);

      ask.mode = 'allow';
      assert.equal(await sendClientHello(k.port, Buffer.from('allowed.example.test')), 'handshake');
      // Forget the certificate: the next handshake for it goes back through the decision, which is cached.
      k.keeper.unmanage(['allowed.example.test']);
      assert.equal(await sendClientHello(k.port, Buffer.from('allowed.example.test')), 'handshake');
      assert.deepEqual(ask.domains(), ['denied.example.test', 'allowed.example.test'], 'each name asked about once');
      assert.equal(k.issuer.calls.length, 1, 'the second time the stored certificate was served');

      await clock.advance(600_000);
      assert.equal(await sendClientHello(k.port, Buffer.from('denied.example.test')), 'handshake', 'asked again after the TTL, and now allowed');
      assert.deepEqual(ask.domains(), ['denied.example.test', 'allowed.example.test', 'denied.example.test']);
    } finally {
      await k.close();
      await ask.stop();
    }
  });

  test('a hanging ask endpoint fails closed at askTimeoutMs: ten handshakes for one name make one request, closed at the timeout', { timeout: 60_000 }, async () => {
    const ask = await new AskServer().start();
    ask.mode = 'hang';
    const k = await keeperWithAsk({ askUrl: ask.url(), askTimeoutMs: 300, timeoutMs: 3_600_000 });
    try {
      const clients = Array.from({ length: 10 }, () => waitingClient(k.port, 'slow.example.test'));
      const answers = await Promise.all(clients.map((c) => c.answer));
      assert.ok(answers.every((a) => a !== 'handshake'), answers.join(', '));
      assert.equal(ask.urls.length, 1, 'one outbound request for the ten handshakes');
      assert.match(k.denials[0]?.reason ?? '', /did not answer within 300 ms/);
      assert.equal(k.keeper.cacheStats().loadTimeouts, 0, 'ended by the ask timeout, not by the handshake timeout');
      await waitUntil(() => ask.open === 0, 'the timed-out ask request closed', 30_000);
      for (const c of clients) c.hangUp();
      assert.deepEqual(k.issuer.calls, []);
    } finally {
      await k.close();
      await ask.stop();
    }
  });

  test('a redirect from the ask endpoint is a deny and is not followed', async () => {
    const ask = await new AskServer().start();
    ask.mode = 'redirect';
    const k = await keeperWithAsk({ askUrl: ask.url() });
    try {
      assert.notEqual(await sendClientHello(k.port, Buffer.from('moved.example.test')), 'handshake');
      assert.deepEqual(ask.urls.filter((u) => u.startsWith('/redirected')), [], 'the Location was not requested');
      assert.equal(ask.urls.length, 1);
      assert.match(k.denials[0]?.reason ?? '', /HTTP 302/);
      assert.deepEqual(k.issuer.calls, []);
    } finally {
      await k.close();
      await ask.stop();
    }
  });

  test('the name is URL-encoded into the query beside the endpoint\'s own parameters; a hostile SNI value is never asked about', async () => {
    const ask = await new AskServer().start();
    const k = await keeperWithAsk({ askUrl: `${ask.url()}?token=a%26b&domain=preset` });
    try {
      assert.equal(await sendClientHello(k.port, Buffer.from('ok.example.test')), 'handshake');
      for (const hostile of ['x.test&domain=ok.example.test', 'x.test#frag', 'x.test?domain=a', 'x%2etest', 'x test']) {
        assert.notEqual(await sendClientHello(k.port, Buffer.from(hostile)), 'handshake', hostile);
      }
      assert.equal(ask.urls.length, 1, 'only the valid name was asked about');
      const query = new URL(ask.urls[0] as string, 'http://x').searchParams;
      assert.deepEqual(query.getAll('domain'), ['ok.example.test'], 'one domain parameter: the name, replacing the preset one');
      assert.equal(query.get('token'), 'a&b', 'the endpoint\'s own parameter is kept');
    } finally {
      await k.close();
      await ask.stop();
    }
  });

  test('an ask endpoint that is down (refused) or resets fails closed, one request per name', { timeout: 60_000 }, async () => {
    // Down: a port nobody listens on.
    const gone = http.createServer();
    const gonePort = await listen(gone);
    await closeServer(gone);
    const down = await keeperWithAsk({ askUrl: `http://127.0.0.1:${gonePort}/check` });
    try {
      for (let i = 0; i < 20; i++) assert.notEqual(await sendClientHello(down.port, Buffer.from(`down${i}.example.test`)), 'handshake');
      assert.equal(down.denials.length, 20);
      for (const d of down.denials) assert.match(d.reason, /ask endpoint failed: .*ECONNREFUSED/);
      assert.deepEqual(down.issuer.calls, []);
    } finally {
      await down.close();
    }

    // Resets every connection: counted, one connection per name, none retried.
    const ask = await new AskServer().start();
    ask.mode = 'reset';
    const k = await keeperWithAsk({ askUrl: ask.url() });
    try {
      await pool(40, 8, (i) => sendClientHello(k.port, Buffer.from(`reset${i % 20}.example.test`)));
      assert.equal(ask.connections, 20, 'one outbound request per distinct name (failures are remembered briefly, not retried per handshake)');
      assert.equal(ask.urls.length, 20);
      assert.deepEqual(k.issuer.calls, []);
      await waitUntil(() => ask.open === 0, 'no ask connection left open', 30_000);
    } finally {
      await k.close();
      await ask.stop();
    }
  });
});
