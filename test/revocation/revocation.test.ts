/**
 * Revocation noticed: the test CA (in front of a real Pebble) revokes a
 * managed certificate and publishes it in its CRL (and OCSP, when enabled);
 * the keeper sees it in its off-handshake checks and replaces the
 * certificate once, with `replaces` naming it. Time runs on a fake clock
 * shared by the keeper and the test CA, so "until nextUpdate" is exact.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type { CertKeeperOptions } from '../../src/config/index.js';
import { CertKeeper } from '../../src/manager/keeper.js';
import { loadCertificateSet } from '../../src/storage/certificates.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import { FakeClock } from '../../src/testing/fake-clock.js';
import { startTestCa, type TestCa, type TestCaOptions } from '../../src/testing/index.js';
import { nextEvent, settle, waitUntil, within } from '../faults/helpers.js';
import { captureLogger } from '../helpers/logging.js';
import { startPebble, type PebbleHandle } from '../helpers/pebble.js';
import { skipUnlessInstalled } from '../helpers/system.js';
import { startReceiver } from '../notify/receiver.js';

const skip = skipUnlessInstalled('pebble', 'pebble-challtestsrv');
const MINUTE = 60_000;
const SECRET = 'revocation-test-secret-0123456789';

describe('revocation noticed (test CA in front of Pebble)', { skip }, () => {
  let pebble: PebbleHandle;
  before(async () => {
    pebble = await startPebble();
  });
  after(async () => {
    await pebble?.stop();
  });

  interface Setup {
    ca: TestCa;
    clock: FakeClock;
    keeper: CertKeeper;
    storage: MemoryStorage;
    logs: () => string;
    /** Another keeper on the same storage, CA and clock (a restarted process). */
    restart(): Promise<CertKeeper>;
    /** A second keeper on the same storage, CA and clock (a peer in a fleet); closed by close(). */
    peer(): CertKeeper;
    close(): Promise<void>;
  }

  async function setUp(caOptions: Omit<TestCaOptions, 'pebble' | 'clock'>, keeperOptions: Partial<CertKeeperOptions> = {}): Promise<Setup> {
    const clock = new FakeClock(Date.now());
    const ca = await startTestCa({ ...caOptions, clock, pebble: { directoryUrl: pebble.directoryUrl, managementUrl: pebble.managementUrl, caCertificate: pebble.pebbleCaPem } });
    const storage = new MemoryStorage();
    const { logger, text } = captureLogger('debug');
    const options: CertKeeperOptions = {
      ca: ca.directoryUrl,
      caCertificates: ca.caCertificate,
      agreeToTerms: true,
      storage,
      challenges: { http01: { port: pebble.httpPort, host: '127.0.0.1' }, tlsAlpn01: false },
      logger,
      clock,
      ...keeperOptions,
    };
    const peers: CertKeeper[] = [];
    const setup: Setup = {
      ca,
      clock,
      keeper: new CertKeeper(options),
      storage,
      logs: text,
      restart: async () => {
        await setup.keeper.close();
        setup.keeper = new CertKeeper(options);
        return setup.keeper;
      },
      peer: () => {
        const peer = new CertKeeper(options);
        peers.push(peer);
        return peer;
      },
      close: async () => {
        await Promise.all([setup.keeper.close(), ...peers.map((peer) => peer.close())]);
        await ca.close();
      },
    };
    return setup;
  }

  async function servedPem(s: Setup, name: string): Promise<string> {
    return (await loadCertificateSet(s.storage, s.keeper.status(name).issuer as string, name)).certPem;
  }

  /** Revokes through the test CA, then puts the ARI window back: only the CRL or OCSP can tell. */
  function revokeKeepingAri(ca: TestCa, certPem: string, reason = 1): void {
    const { renewalWindow } = ca.certificate(certPem);
    ca.revoke(certPem, reason);
    ca.setRenewalWindow(certPem, renewalWindow);
  }

  test('through the CRL: cached until nextUpdate, then the revocation is seen and the certificate replaced once, with replaces; one revoked notification', async () => {
    const receiver = await startReceiver(SECRET);
    const s = await setUp({ crlLifetimeMs: 10 * MINUTE }, { revocationCheck: { intervalMs: 4 * MINUTE }, notify: { webhook: { url: receiver.url, secret: SECRET } } });
    receiver.now = () => s.clock.now();
    const name = 'crl.example.test';
    try {
      await s.keeper.manageSync([name]);
      const oldPem = await servedPem(s, name);
      const old = s.ca.certificate(oldPem);
      assert.match(new X509Certificate(oldPem).toString(), /BEGIN CERTIFICATE/);
      await s.clock.advance(0);
      await waitUntil(() => s.ca.requests('crl') === 1, 'the first CRL fetch');
      await settle(100);
      revokeKeepingAri(s.ca, oldPem);

      // The CRL fetched before the revocation is good until its nextUpdate (10 min): the 4-minute check reuses it.
      await s.clock.advance(4 * MINUTE + 1_000);
      await settle(200);
      assert.equal(s.ca.requests('crl'), 1, 'not fetched again before nextUpdate');
      assert.equal(s.keeper.status(name).serialNumber, old.serialNumber.toUpperCase());

      const revoked = nextEvent(s.keeper, 'cert_revoked');
      const renewed = nextEvent(s.keeper, 'cert_renewed');
      await s.clock.advance(6 * MINUTE);
      const event = await revoked;
      assert.equal(event.source, 'crl');
      assert.equal(event.reason, 1);
      assert.equal(event.serialNumber, old.serialNumber.toUpperCase());
      await s.clock.advance(0);
      const renewal = await renewed;
      assert.equal(renewal.renewalReason, 'revoked');

      const issued = s.ca.certificates();
      assert.equal(issued.length, 2, 'one replacement');
      assert.equal(issued[1]?.replaces, old.certId, 'the order named the revoked certificate in replaces');
      assert.equal(s.keeper.status(name).serialNumber, renewal.serialNumber);
      assert.equal(s.ca.certificate(old.certId).renewalWindow.start.getTime(), old.renewalWindow.start.getTime(), 'the ARI window never moved');

      // Later checks see the new certificate as good: nothing more is ordered or sent.
      await s.clock.advance(20 * MINUTE);
      await settle(300);
      assert.equal(s.ca.certificates().length, 2);
      await waitUntil(() => receiver.deliveries.some((d) => d.json['type'] === 'cert_revoked'), 'the revoked notification');
      const deliveries = receiver.deliveries.filter((d) => d.json['type'] === 'cert_revoked');
      assert.equal(deliveries.length, 1);
      assert.equal(deliveries[0]?.signatureValid, true);
      assert.equal(deliveries[0]?.json['serialNumber'], old.serialNumber.toUpperCase());
      assert.equal(deliveries[0]?.json['revocationSource'], 'crl');
      assert.equal(s.ca.requests('ocsp'), 0, 'the certificates name no OCSP responder: none asked');
    } finally {
      await s.close();
      await receiver.close();
    }
  });

  test('a certificate whose context the cache evicted is still checked, its chain read back from storage, and replaced once', async () => {
    // Capacity 1: serving the second name evicts the first, whose record then holds no chain in memory.
    const s = await setUp({ crlLifetimeMs: 10 * MINUTE }, { cacheCapacity: 1, revocationCheck: { intervalMs: 4 * MINUTE } });
    const [first, second] = ['evicted-a.example.test', 'evicted-b.example.test'];
    const evicted: string[][] = [];
    s.keeper.on('cert_evicted', ({ names }) => evicted.push(names));
    const reads: string[] = [];
    let counting = false;
    const load = s.storage.load.bind(s.storage);
    s.storage.load = (key) => {
      if (counting && key.includes(first)) reads.push(key);
      return load(key);
    };
    try {
      await s.keeper.manageSync([first]);
      await s.clock.advance(0);
      await waitUntil(() => s.ca.requests('crl') === 1, 'the first CRL fetch');
      await s.keeper.manageSync([second]);
      assert.deepEqual(evicted, [[first]], 'the first certificate left the cache');
      const oldPem = await servedPem(s, first);
      const old = s.ca.certificate(oldPem);
      revokeKeepingAri(s.ca, oldPem);
      counting = true;

      const revoked = nextEvent(s.keeper, 'cert_revoked');
      const renewed = nextEvent(s.keeper, 'cert_renewed');
      // Past the CRL's nextUpdate: the next check fetches it again and finds the evicted certificate's serial.
      await s.clock.advance(10 * MINUTE + 1_000);
      const event = await revoked;
      assert.ok(reads.some((key) => key.endsWith('.crt')), `the evicted record kept no chain: its check read it from storage (${reads.join(', ')})`);
      assert.deepEqual(event.names, [first]);
      assert.equal(event.serialNumber, old.serialNumber.toUpperCase());
      await s.clock.advance(0);
      const renewal = await renewed;
      assert.equal(renewal.renewalReason, 'revoked');
      assert.equal(s.ca.certificates().filter((c) => c.replaces === old.certId).length, 1, 'one replacement, naming the revoked certificate');
    } finally {
      await s.close();
    }
  });

  test('through OCSP (a CA that runs it): the revoked answer is seen with CRL checks off, and the certificate replaced once', async () => {
    const s = await setUp({ ocsp: true, crlLifetimeMs: 10 * MINUTE }, { revocationCheck: { crl: false, intervalMs: 30 * MINUTE } });
    const name = 'ocsp.example.test';
    try {
      await s.keeper.manageSync([name]);
      const oldPem = await servedPem(s, name);
      const old = s.ca.certificate(oldPem);
      await s.clock.advance(0);
      await waitUntil(() => s.ca.requests('ocsp') === 1, 'the first OCSP request');
      await settle(100);
      revokeKeepingAri(s.ca, oldPem, 4);

      const revoked = nextEvent(s.keeper, 'cert_revoked');
      const renewed = nextEvent(s.keeper, 'cert_renewed');
      // The good answer is asked again half-way to its nextUpdate (5 of 10 minutes).
      await s.clock.advance(5 * MINUTE + 1_000);
      const event = await revoked;
      assert.equal(event.source, 'ocsp');
      assert.equal(event.reason, 4);
      await s.clock.advance(0);
      const renewal = await renewed;
      assert.equal(renewal.renewalReason, 'revoked');
      const issued = s.ca.certificates();
      assert.equal(issued.length, 2);
      assert.equal(issued[1]?.replaces, old.certId);
      assert.equal(s.ca.requests('crl'), 0, 'CRL checks were off');
    } finally {
      await s.close();
    }
  });

  test('a CRL with a bad signature is rejected with ERR_REVOCATION_INVALID, logged without secrets, and the certificate kept', async () => {
    const s = await setUp({ crlLifetimeMs: 10 * MINUTE }, { revocationCheck: { intervalMs: 4 * MINUTE } });
    const name = 'tampered.example.test';
    let revokedEvents = 0;
    s.keeper.on('cert_revoked', () => revokedEvents++);
    try {
      await s.keeper.manageSync([name]);
      const oldPem = await servedPem(s, name);
      const keyPem = (await loadCertificateSet(s.storage, s.keeper.status(name).issuer as string, name)).keyPem;
      s.ca.tamperCrl(true);
      revokeKeepingAri(s.ca, oldPem);
      await s.clock.advance(0);
      await waitUntil(() => s.logs().includes('ERR_REVOCATION_INVALID'), 'the rejected CRL to be logged');
      const line = s.logs().split('\n').find((l) => l.includes('ERR_REVOCATION_INVALID')) as string;
      const entry = JSON.parse(line) as { level: number; err: { code: string; message: string }; names: string[] };
      assert.equal(entry.level, 40, 'a warn');
      assert.match(entry.err.message, /signature does not verify/);
      assert.deepEqual(entry.names, [name]);
      assert.doesNotMatch(s.logs(), /PRIVATE KEY/);
      assert.ok(!s.logs().includes(keyPem.split('\n')[1] as string), 'no key material in the logs');
      await settle(200);
      assert.equal(revokedEvents, 0);
      assert.equal(s.ca.certificates().length, 1, 'nothing ordered');
      assert.equal(s.keeper.status(name).serialNumber, new X509Certificate(oldPem).serialNumber);
    } finally {
      await s.close();
    }
  });

  test('an unreachable CRL is logged with ERR_REVOCATION_FETCH and changes nothing; the next check sees the revocation', async () => {
    const s = await setUp({ crlLifetimeMs: 10 * MINUTE }, { revocationCheck: { intervalMs: 4 * MINUTE, retries: 0 } });
    const name = 'unreachable.example.test';
    try {
      await s.keeper.manageSync([name]);
      const oldPem = await servedPem(s, name);
      s.ca.injectFault({ endpoint: 'crl', status: 503, times: Infinity });
      revokeKeepingAri(s.ca, oldPem);
      await s.clock.advance(0);
      await waitUntil(() => s.logs().includes('ERR_REVOCATION_FETCH'), 'the failed fetch to be logged');
      assert.match(s.logs(), /HTTP 503/);
      await settle(100);
      assert.equal(s.ca.certificates().length, 1, 'nothing ordered');
      assert.equal(s.keeper.status(name).serialNumber, new X509Certificate(oldPem).serialNumber);

      s.ca.clearFaults();
      const renewed = nextEvent(s.keeper, 'cert_renewed');
      await s.clock.advance(4 * MINUTE + 1_000);
      await waitUntil(() => s.ca.requests('crl') === 2, 'the next check');
      await settle(100);
      await s.clock.advance(0);
      assert.equal((await within(renewed, 'the replacement')).renewalReason, 'revoked');
      assert.equal(s.ca.certificates().length, 2);
    } finally {
      await s.close();
    }
  });

  test('through ARI alone (revocation checks off): the window the CA moved into the past replaces the certificate with replaces', async () => {
    const s = await setUp({ renewalInfoRetryAfterSeconds: 3600 }, { revocationCheck: false });
    const name = 'ari.example.test';
    try {
      await s.keeper.manageSync([name]);
      const oldPem = await servedPem(s, name);
      const old = s.ca.certificate(oldPem);
      await s.clock.advance(0);
      await waitUntil(() => s.ca.certificate(oldPem).renewalInfoRequests === 1, 'the first renewalInfo request');
      await settle(100);
      assert.equal(s.ca.certificates().length, 1, 'its window is weeks ahead: nothing ordered');
      s.ca.revoke(oldPem);
      const renewed = nextEvent(s.keeper, 'cert_renewed');
      // The running keeper asks again after the CA's Retry-After (counted on the keeper's clock), sees the
      // window in the past and replaces the certificate at once (an hour on: a certificate is never renewed
      // within its first hour, the guard against acting on a stale window).
      await s.clock.advance(3_601_000);
      await waitUntil(() => s.ca.certificate(oldPem).renewalInfoRequests === 2, 'the renewalInfo request after the revocation');
      await settle(100);
      // The renewal is due at once: on the fake clock, "at once" is the next tick.
      await s.clock.advance(0);
      const renewal = await within(renewed, 'the renewal');
      assert.equal(renewal.renewalReason, 'ari');
      assert.equal(renewal.replacedEarlyByAri, true);
      const issued = s.ca.certificates();
      assert.equal(issued.length, 2);
      assert.equal(issued[1]?.replaces, old.certId);
      assert.equal(s.ca.requests('crl'), 0, 'revocationCheck: false fetches no CRL');
      assert.equal(s.ca.requests('ocsp'), 0);
    } finally {
      await s.close();
    }
  });
  test('two processes sharing storage both see the revocation: one replacement, one revoked notification', async () => {
    const receiver = await startReceiver(SECRET);
    const s = await setUp({ crlLifetimeMs: 10 * MINUTE }, { revocationCheck: { intervalMs: 4 * MINUTE }, notify: { webhook: { url: receiver.url, secret: SECRET } } });
    receiver.now = () => s.clock.now();
    const name = 'fleet.example.test';
    const peer = s.peer();
    const seen: string[] = [];
    s.keeper.on('cert_revoked', () => seen.push('first'));
    peer.on('cert_revoked', () => seen.push('peer'));
    try {
      await s.keeper.manageSync([name]);
      await peer.manageSync([name]);
      const oldPem = await servedPem(s, name);
      assert.equal(peer.status(name).serialNumber, s.keeper.status(name).serialNumber, 'the peer serves the stored certificate');
      await s.clock.advance(0);
      await waitUntil(() => s.ca.requests('crl') === 2, 'both first CRL fetches');
      await settle(100);
      revokeKeepingAri(s.ca, oldPem);
      await s.clock.advance(10 * MINUTE + 1_000);
      await waitUntil(() => seen.length === 2, 'both processes to see the revocation');
      await s.clock.advance(0);
      await waitUntil(() => s.keeper.status(name).serialNumber !== new X509Certificate(oldPem).serialNumber && peer.status(name).serialNumber === s.keeper.status(name).serialNumber, 'both to serve the replacement');
      assert.equal(s.ca.certificates().length, 2, 'one replacement for the fleet');
      await waitUntil(() => receiver.deliveries.some((d) => d.json['type'] === 'cert_revoked'), 'the revoked notification');
      await settle(300);
      assert.equal(receiver.deliveries.filter((d) => d.json['type'] === 'cert_revoked').length, 1, 'one notification for the fleet');
    } finally {
      await s.close();
      await receiver.close();
    }
  });
});
