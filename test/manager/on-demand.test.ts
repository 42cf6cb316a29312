import assert from 'node:assert/strict';
import http from 'node:http';
import https from 'node:https';
import { after, before, describe, test } from 'node:test';
import { InvalidOptionError } from '../../src/errors.js';
import type { OnDemandDeniedEvent } from '../../src/events.js';
import { CertKeeper } from '../../src/manager/keeper.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import { startPebble, type PebbleHandle } from '../helpers/pebble.js';
import { skipUnlessInstalled } from '../helpers/system.js';
import { handshake } from '../helpers/tls-client.js';
import { closeServer, countingStorage, listen, nextEvent, pebbleOptions } from '../faults/helpers.js';

const skip = skipUnlessInstalled('pebble', 'pebble-challtestsrv');

describe('on-demand TLS against Pebble', { skip }, () => {
  let pebble: PebbleHandle;
  let root: string;
  before(async () => {
    pebble = await startPebble();
    root = await pebble.rootPem();
  });
  after(async () => {
    await pebble?.stop();
  });

  async function serve(keeper: CertKeeper): Promise<{ port: number; server: https.Server }> {
    const server = https.createServer(keeper.tlsOptions(), (_req, res) => res.end('ok'));
    return { port: await listen(server), server };
  }

  test('enabling on-demand without decide or askUrl is an InvalidOptionError naming onDemand', () => {
    assert.throws(() => new CertKeeper({ onDemand: {}, storage: new MemoryStorage() }), (e: unknown) => {
      assert.ok(e instanceof InvalidOptionError);
      assert.equal(e.option, 'onDemand');
      return true;
    });
  });

  test('a denied name makes no order and no storage write, and emits on_demand_denied', async () => {
    const counted = countingStorage(new MemoryStorage());
    const asked: string[] = [];
    const keeper = new CertKeeper(pebbleOptions(pebble, counted.storage, { onDemand: { decide: (name) => (asked.push(name), false) } }));
    const { port, server } = await serve(keeper);
    try {
      const issued = pebble.issuedCount();
      counted.stores.length = 0;
      const denied = nextEvent(keeper, 'on_demand_denied');
      await assert.rejects(handshake(port, 'Denied.Example.test', root));
      const event = await denied;
      assert.equal(event.name, 'denied.example.test');
      assert.deepEqual(asked, ['denied.example.test'], 'decide() sees the normalised name');
      assert.equal(pebble.issuedCount(), issued, 'no certificate issued');
      assert.deepEqual(counted.stores, [], 'nothing written to storage');
      assert.equal(keeper.list().length, 0, 'the denied name is not managed');
    } finally {
      await closeServer(server);
      await keeper.close();
    }
  });

  test('50 concurrent handshakes for one allowed new name make exactly one order and all get the certificate', async () => {
    const keeper = new CertKeeper(pebbleOptions(pebble, new MemoryStorage(), { onDemand: { decide: (name) => name === 'fresh.example.test' } }));
    const { port, server } = await serve(keeper);
    try {
      const issued = pebble.issuedCount();
      let obtained = 0;
      keeper.on('cert_obtained', () => obtained++);
      const peers = await Promise.all(Array.from({ length: 50 }, () => handshake(port, 'fresh.example.test', root)));
      assert.equal(pebble.issuedCount(), issued + 1, 'one order');
      assert.equal(obtained, 1);
      const serial = keeper.status('fresh.example.test').serialNumber?.toUpperCase();
      assert.ok(serial);
      for (const peer of peers) {
        assert.equal(peer.serialNumber, serial);
        assert.ok(peer.authorized, peer.authorizationError);
      }
    } finally {
      await closeServer(server);
      await keeper.close();
    }
  });

  test('askUrl: a 2xx answer allows, a 403 denies; a hanging endpoint fails closed after askTimeoutMs', async () => {
    const queries: string[] = [];
    const hanging: http.ServerResponse[] = [];
    const askServer = http.createServer((req, res) => {
      const domain = new URL(req.url ?? '/', 'http://x').searchParams.get('domain') ?? '';
      queries.push(domain);
      if (domain.startsWith('hang')) hanging.push(res);
      else res.writeHead(domain.startsWith('ok') ? 204 : 403).end();
    });
    const askPort = await listen(askServer);
    const keeper = new CertKeeper(pebbleOptions(pebble, new MemoryStorage(), {
      onDemand: { askUrl: `http://127.0.0.1:${askPort}/check?x=1`, askTimeoutMs: 300, timeoutMs: 20_000 },
    }));
    const { port, server } = await serve(keeper);
    const denials: OnDemandDeniedEvent[] = [];
    keeper.on('on_demand_denied', (event) => denials.push(event));
    try {
      const issued = pebble.issuedCount();
      const allowed = await handshake(port, 'ok.example.test', root);
      assert.ok(allowed.authorized, allowed.authorizationError);
      assert.equal(allowed.subjectAltName, 'DNS:ok.example.test');
      assert.equal(pebble.issuedCount(), issued + 1);

      await assert.rejects(handshake(port, 'no.example.test', root));
      assert.equal(pebble.issuedCount(), issued + 1, 'a 403 makes no order');
      assert.match(denials.find((d) => d.name === 'no.example.test')?.reason ?? '', /403/);

      await assert.rejects(handshake(port, 'hang.example.test', root));
      assert.match(denials.find((d) => d.name === 'hang.example.test')?.reason ?? '', /did not answer within 300 ms/);
      assert.equal(keeper.cacheStats().loadTimeouts, 0, 'the handshake ended at the ask timeout, not at the on-demand timeout');
      assert.equal(pebble.issuedCount(), issued + 1, 'a hanging ask endpoint makes no order');
      assert.deepEqual(queries, ['ok.example.test', 'no.example.test', 'hang.example.test']);
    } finally {
      for (const res of hanging) res.destroy();
      await closeServer(server);
      await closeServer(askServer);
      await keeper.close();
    }
  });

  test('the on-demand rate limit caps new orders', async () => {
    const keeper = new CertKeeper(pebbleOptions(pebble, new MemoryStorage(), {
      onDemand: { decide: () => true, rateLimit: { capacity: 2, refillAmount: 1, refillIntervalMs: 3_600_000 } },
    }));
    const { port, server } = await serve(keeper);
    const denials: OnDemandDeniedEvent[] = [];
    keeper.on('on_demand_denied', (event) => denials.push(event));
    try {
      const issued = pebble.issuedCount();
      await handshake(port, 'rate1.example.test', root);
      await handshake(port, 'rate2.example.test', root);
      await assert.rejects(handshake(port, 'rate3.example.test', root));
      await assert.rejects(handshake(port, 'rate4.example.test', root));
      assert.equal(pebble.issuedCount(), issued + 2, 'only the bucket capacity of orders');
      assert.deepEqual(denials.map((d) => [d.name, d.reason]), [
        ['rate3.example.test', 'on-demand rate limit reached'],
        ['rate4.example.test', 'on-demand rate limit reached'],
      ]);
      // Names already obtained are still served without another order.
      const again = await handshake(port, 'rate1.example.test', root);
      assert.equal(again.subjectAltName, 'DNS:rate1.example.test');
      assert.equal(pebble.issuedCount(), issued + 2);
    } finally {
      await closeServer(server);
      await keeper.close();
    }
  });
});
