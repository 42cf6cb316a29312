import assert from 'node:assert/strict';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { ChalltestsrvDnsProvider } from '../../src/dns/challtestsrv.js';
import type { CertKeeperEvents } from '../../src/events.js';
import { CertKeeper } from '../../src/manager/keeper.js';
import { certificateKeys } from '../../src/storage/layout.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import { FakeClock } from '../../src/testing/fake-clock.js';
import { startPebble, type PebbleHandle } from '../helpers/pebble.js';
import { silentLogger } from '../helpers/logging.js';
import { skipUnlessInstalled } from '../helpers/system.js';
import { handshake, httpsGet } from '../helpers/tls-client.js';

const skip = skipUnlessInstalled('pebble', 'pebble-challtestsrv');

function listen(server: https.Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

function nextEvent<E extends keyof CertKeeperEvents>(keeper: CertKeeper, event: E): Promise<CertKeeperEvents[E]> {
  return new Promise((resolve) => {
    const off = keeper.on(event, (payload) => {
      off();
      resolve(payload);
    });
  });
}

describe('renewal against Pebble', { skip }, () => {
  let pebble: PebbleHandle;
  let root: string;

  before(async () => {
    pebble = await startPebble();
    root = await pebble.rootPem();
  });
  after(async () => {
    await pebble?.stop();
  });

  const options = (storage: MemoryStorage, clock?: FakeClock) => ({
    ca: pebble.directoryUrl,
    caCertificates: pebble.pebbleCaPem,
    agreeToTerms: true,
    storage,
    challenges: { http01: { port: pebble.httpPort, host: '127.0.0.1' }, tlsAlpn01: false as const },
    logger: silentLogger(),
    ...(clock ? { clock } : {}),
  });

  test('moving the clock past the due time renews; new handshakes get the new serial, a keep-alive connection carries on', async () => {
    const clock = new FakeClock(Date.now());
    const keeper = new CertKeeper(options(new MemoryStorage(), clock));
    const server = https.createServer({ ...keeper.tlsOptions(), keepAliveTimeout: 60_000 }, (_req, res) => res.end('ok'));
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const name = 'renew.example.test';
      await keeper.manageSync([name]);
      const port = await listen(server);
      const first = await httpsGet(port, name, root, '/', agent);
      const before = keeper.status(name);
      assert.equal(first.serialNumber, before.serialNumber?.toUpperCase());
      assert.ok(before.nextRenewalAt);

      const renewed = nextEvent(keeper, 'cert_renewed');
      await clock.set(before.nextRenewalAt.getTime() + 1_000);
      const event = await renewed;
      assert.notEqual(event.serialNumber, before.serialNumber);
      assert.equal(keeper.status(name).serialNumber, event.serialNumber);

      const fresh = await handshake(port, name, root);
      assert.equal(fresh.serialNumber, event.serialNumber.toUpperCase());
      // The connection opened before the swap is still the one in use and still works.
      const again = await httpsGet(port, name, root, '/', agent);
      assert.equal(again.status, 200);
      assert.equal(again.serialNumber, first.serialNumber, 'the keep-alive connection keeps its original certificate');
      const nextAfter = keeper.status(name).nextRenewalAt;
      assert.ok(nextAfter && nextAfter.getTime() >= clock.now() + 3_600_000, 'a fresh certificate is not renewed again at once');
    } finally {
      agent.destroy();
      server.close();
      await keeper.close();
    }
  });

  test('a failed renewal keeps the old certificate in service, persists the backoff, and a forced renew succeeds later', async () => {
    const clock = new FakeClock(Date.now());
    const storage = new MemoryStorage();
    const keeper = new CertKeeper(options(storage, clock));
    const server = https.createServer(keeper.tlsOptions(), (_req, res) => res.end('ok'));
    try {
      const name = 'fail.example.test';
      await keeper.manageSync([name]);
      const port = await listen(server);
      const before = keeper.status(name);
      await pebble.pause();
      const failed = nextEvent(keeper, 'cert_failed');
      await clock.set(before.nextRenewalAt!.getTime() + 1_000);
      const failure = await failed;
      assert.equal(failure.attempt, 1);
      assert.equal(failure.renewal, true);
      assert.ok(failure.nextAttemptAt && failure.nextAttemptAt.getTime() > clock.now());

      const served = await handshake(port, name, root);
      assert.equal(served.serialNumber, before.serialNumber?.toUpperCase(), 'old certificate still served');
      const meta = JSON.parse((await storage.load(certificateKeys(before.issuer!, name).meta)).toString());
      assert.equal(meta.renewal.failures, 1);
      assert.equal(Date.parse(meta.renewal.nextAttemptAt), failure.nextAttemptAt!.getTime());
      assert.equal(keeper.status(name).failures, 1);

      await pebble.resume();
      const root2 = await pebble.rootPem();
      const status = await keeper.renew(name, { force: true });
      assert.notEqual(status.serialNumber, before.serialNumber);
      assert.equal(status.failures, 0);
      const after = await handshake(port, name, root2);
      assert.equal(after.serialNumber, status.serialNumber?.toUpperCase());
      assert.ok(after.authorized, after.authorizationError);
      root = root2;
    } finally {
      server.close();
      await keeper.close();
    }
  });

  test('a wildcard (DNS-01) serves a.example.test but not a.b.example.test; HTTP-01 names in the same keeper', async () => {
    const chall = pebble.challtestsrv!;
    root = await pebble.rootPem();
    const keeper = new CertKeeper(options(new MemoryStorage()));
    const server = https.createServer(keeper.tlsOptions(), (_req, res) => res.end('ok'));
    try {
      await keeper.manageSync([['*.wild.test']], {
        challenges: {
          http01: false,
          tlsAlpn01: false,
          dns01: { provider: new ChalltestsrvDnsProvider({ managementUrl: chall.managementUrl }), propagation: { resolvers: [chall.dnsServer], intervalMs: 50, timeoutMs: 10_000 } },
        },
      });
      await keeper.manageSync(['plain.example.test']);
      const port = await listen(server);
      const wild = await handshake(port, 'a.wild.test', root);
      assert.ok(wild.authorized, wild.authorizationError);
      assert.equal(wild.subjectAltName, 'DNS:*.wild.test');
      const deep = await handshake(port, 'a.b.wild.test', root).catch((error: Error) => error);
      assert.ok(deep instanceof Error || deep.subjectAltName !== 'DNS:*.wild.test', 'a.b.wild.test is not served by *.wild.test');
      const plain = await handshake(port, 'plain.example.test', root);
      assert.equal(plain.subjectAltName, 'DNS:plain.example.test');
    } finally {
      server.close();
      await keeper.close();
    }
  });
});

describe('real renewal without moving the clock', { skip }, () => {
  let pebble: PebbleHandle;
  before(async () => {
    pebble = await startPebble({ certificateValidityPeriod: 20 });
  });
  after(async () => {
    await pebble?.stop();
  });

  test('a 20-second certificate is renewed and the new one served before the first expires', async () => {
    const keeper = new CertKeeper({
      ca: pebble.directoryUrl,
      caCertificates: pebble.pebbleCaPem,
      agreeToTerms: true,
      storage: new MemoryStorage(),
      challenges: { http01: { port: pebble.httpPort, host: '127.0.0.1' }, tlsAlpn01: false },
      logger: silentLogger(),
    });
    const server = https.createServer(keeper.tlsOptions(), (_req, res) => res.end('ok'));
    try {
      const root = await pebble.rootPem();
      const name = 'short.example.test';
      await keeper.manageSync([name]);
      const first = keeper.status(name);
      const port = await listen(server);
      const renewed = await nextEvent(keeper, 'cert_renewed');
      assert.ok(Date.now() < first.notAfter!.getTime(), 'renewed before the first certificate expired');
      const served = await handshake(port, name, root);
      assert.equal(served.serialNumber, renewed.serialNumber.toUpperCase());
      assert.notEqual(renewed.serialNumber, first.serialNumber);
    } finally {
      server.close();
      await keeper.close();
    }
  });
});

