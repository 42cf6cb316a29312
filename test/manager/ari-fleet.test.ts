/**
 * A fleet polls each certificate once (issue #16 item 4): two keepers on one
 * FileStorage, the test CA in front of Pebble, a held fake clock moved by the
 * test. For each certificate, the keeper that takes its lock asks renewalInfo
 * and stores the answer under the lock; the other reads the stored answer.
 * The test CA counts the requests per certificate: one per poll period for
 * the whole fleet. Then a drill: each certificate renewed once across the
 * fleet (the other keeper adopts the stored successor).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { CertKeeperOptions } from '../../src/config/index.js';
import { CertKeeper } from '../../src/manager/keeper.js';
import { FileStorage } from '../../src/storage/file.js';
import type { TestCaCertificate } from '../../src/testing/index.js';
import { closeServer, settle, waitUntil } from '../faults/helpers.js';
import { silentLogger } from '../helpers/logging.js';
import { skipUnlessInstalled } from '../helpers/system.js';
import { DEFAULT_ARI_PEER_WAIT_MS } from '../../src/defaults.js';
import { startAriHarness, type AriHarness } from './ari-harness.js';

const skip = skipUnlessInstalled('pebble', 'pebble-challtestsrv');
const HOUR = 3_600_000;

describe('ARI polling in a fleet of two keepers on one FileStorage', { skip }, () => {
  let h: AriHarness;
  let dir: string;
  before(async () => {
    h = await startAriHarness({ retryAfterSeconds: 3600 });
    await h.hold();
    dir = await mkdtemp(join(tmpdir(), 'certkeeper-ari-fleet-'));
  });
  after(async () => {
    h?.resume();
    await h?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('one renewalInfo request per certificate per poll period for the fleet; after a drill each is renewed once', { timeout: 240_000 }, async () => {
    const N = 10;
    const names = Array.from({ length: N }, (_, i) => `fleet-${i}.example.test`);
    const ledger = (name: string): TestCaCertificate[] => h.ca.certificates().filter((c) => c.identifiers.includes(name));
    const asked = (): number[] => names.map((n) => ledger(n).reduce((sum, c) => sum + c.renewalInfoRequests, 0));
    const root = join(dir, 'storage');
    const options = (): CertKeeperOptions => ({
      ca: h.ca.directoryUrl,
      caCertificates: h.ca.caCertificate,
      agreeToTerms: true,
      storage: new FileStorage({ root }),
      clock: h.clock,
      renewalPacing: false,
      // One challenge server for the fleet, answering from the shared storage (as a load balancer would route).
      challenges: { http01: { listener: false }, tlsAlpn01: false },
      logger: silentLogger(),
    });
    const keepers = [new CertKeeper(options()), new CertKeeper(options())];
    const [a, b] = keepers as [CertKeeper, CertKeeper];
    const server = http.createServer(a.httpChallengeHandler());
    await new Promise<void>((resolve) => server.listen(h.pebble.httpPort, '127.0.0.1', () => resolve()));
    const renewedBy = new Map<string, number>();
    for (const keeper of keepers) keeper.on('cert_renewed', (e) => renewedBy.set(e.names[0]!, (renewedBy.get(e.names[0]!) ?? 0) + 1));
    /** Lets the peer that found a lock taken read the stored answer (it looks again after the peer wait). */
    const peersRead = async (): Promise<void> => {
      await settle(300);
      await h.jump(DEFAULT_ARI_PEER_WAIT_MS);
      await settle(300);
    };
    try {
      await Promise.all([a.manageSync(names), b.manageSync(names)]);
      assert.equal(h.ca.certificates().filter((c) => names.some((n) => c.identifiers.includes(n))).length, N, 'each name issued once for the fleet');

      // First poll, then two poll periods (Retry-After: 1 hour).
      for (const [period, at] of [[1, 0], [2, HOUR], [3, HOUR]] as const) {
        await h.jump(at);
        await waitUntil(() => asked().every((n) => n >= period), `poll ${period} of every certificate`, 30_000);
        await peersRead();
        assert.deepEqual(asked(), names.map(() => period), `poll period ${period}: one renewalInfo request per certificate for both keepers`);
        for (const keeper of keepers) {
          assert.ok(names.every((n) => keeper.status(n).ariWindow !== undefined), 'both keepers know every window');
        }
      }

      // A drill: whichever keeper asks stores the past window, the other reads it; one order per certificate.
      const ordersBefore = h.ca.requests('newOrder');
      h.ca.revocationDrill();
      await h.jump(HOUR);
      await waitUntil(() => names.every((n) => ledger(n)[0]!.renewalInfoRequests === 4), 'the drill poll', 30_000);
      for (let i = 0; i < 20 && !names.every((n) => ledger(n).length === 2 && keepers.every((k) => k.status(n).serialNumber?.toLowerCase() === ledger(n)[1]!.serialNumber)); i++) {
        await peersRead();
      }
      for (const name of names) {
        const [old, successor, extra] = ledger(name);
        assert.equal(extra, undefined, `${name}: renewed once for the fleet`);
        assert.equal(successor?.replaces, old?.certId);
        for (const keeper of keepers) assert.equal(keeper.status(name).serialNumber?.toLowerCase(), successor?.serialNumber, 'both keepers serve the successor');
      }
      assert.equal(h.ca.requests('newOrder') - ordersBefore, N, 'one order per certificate across the fleet');
      assert.equal([...renewedBy.values()].reduce((x, y) => x + y, 0), N, 'one cert_renewed per certificate across the fleet');
    } finally {
      await Promise.all(keepers.map((k) => k.close()));
      await closeServer(server);
    }
  });
});
