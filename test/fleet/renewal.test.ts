/**
 * Fleet test 6: a renewal done by one process is picked up by the others
 * without a second order, and a renewal due in every process at the same
 * moment is ordered once. Peers re-read storage under the name's lock when
 * their own due time for the old certificate comes (the start of its renewal
 * window), find a newer serial there and serve it instead of ordering. Pebble
 * issues 24-second certificates here, so that due time comes about 12 s after
 * issuance (short-lived certificates renew at half their lifetime).
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { loadCertificateSet } from 'certkeeper'; // one copy with the installed adapters' errors
import { issuerKeyFromDirectoryUrl } from '../../src/storage/layout.js';
import { startPebble, type PebbleHandle } from '../helpers/pebble.js';
import { skipUnlessInstalled } from '../helpers/system.js';
import { handshake } from '../helpers/tls-client.js';
import { sharedStorage, startWorkers, stopAll, storageSkipReason, workerConfig, type Worker, type WorkerReport } from './fleet.js';

const pebbleSkip = skipUnlessInstalled('pebble', 'pebble-challtestsrv');
const redisSkip = await storageSkipReason('redis');
const LIFETIME_S = 24;

describe('fleet: renewal by one process, picked up by the others', { skip: pebbleSkip }, () => {
  let pebble: PebbleHandle;
  let root: string;
  const workers: Worker[] = [];

  before(async () => {
    pebble = await startPebble({ certificateValidityPeriod: LIFETIME_S });
    root = await pebble.rootPem();
  });
  after(async () => {
    await stopAll(workers);
    await pebble?.stop();
  });

  test('peers serve a renewal done by one process by the old certificate\'s due time without ordering; a renewal due everywhere at once is ordered once', { skip: pebbleSkip || redisSkip }, async () => {
    const storage = await sharedStorage('redis', 5_000);
    try {
      const fleet = await startWorkers([
        workerConfig('a', storage, pebble, { challengePort: pebble.httpPort }),
        workerConfig('b', storage, pebble),
        workerConfig('c', storage, pebble),
      ]);
      workers.push(...fleet);
      const [renewer, ...peers] = fleet as [Worker, Worker, Worker];
      const name = 'renew.fleet.test';
      const issuedBefore = pebble.issuedCount();
      const requests = fleet.map((w) => w.send({ cmd: 'manage', names: [name] }));
      for (const [i, w] of fleet.entries()) assert.equal((await w.reply(requests[i] as number)).event, 'managed');
      assert.equal(pebble.issuedCount() - issuedBefore, 1);

      const first = await loadCertificateSet(storage.inspector, issuerKeyFromDirectoryUrl(pebble.directoryUrl), name);
      const notBefore = Date.parse(first.meta.notBefore);
      const notAfter = Date.parse(first.meta.notAfter);
      for (const w of fleet) assert.equal((await handshake(w.port, name, root)).serialNumber, first.meta.serialNumber.toUpperCase());

      // Renew a quarter into the lifetime: the peers' due time for the first certificate (half-way) is then well
      // before the renewed one's own due time, so whatever happens at the peers' due time is the pickup under test.
      await sleep(Math.max(0, notBefore + (notAfter - notBefore) / 4 - Date.now()));
      const marks = peers.map((p) => p.reports.length);
      const renewed = await renewer.request({ cmd: 'renew', name });
      assert.equal(renewed.event, 'renewed', JSON.stringify(renewed));
      const newSerial = renewed.serial as string;
      assert.notEqual(newSerial, first.meta.serialNumber);
      assert.equal(pebble.issuedCount() - issuedBefore, 2);

      // Each peer re-reads storage at its due time for the first certificate and adopts the renewed one.
      const adoptions = await Promise.all(
        peers.map((p, i) => p.waitFor((r: WorkerReport) => r.event === 'loaded' && p.reports.indexOf(r) >= (marks[i] as number), 'adoption of the renewed certificate')),
      );
      const adoptedAt = Date.now();
      assert.equal(adoptions.length, 2);
      assert.equal(pebble.issuedCount() - issuedBefore, 2, 'the peers adopted the renewal instead of ordering');
      assert.ok(adoptedAt < notAfter, 'the peers switched before the first certificate expired');
      for (const peer of peers) {
        const served = await handshake(peer.port, name, root);
        assert.ok(served.authorized, served.authorizationError);
        assert.equal(served.serialNumber, newSerial.toUpperCase(), `${peer.id} serves the renewed certificate`);
        assert.ok(!peer.reports.slice(marks[peers.indexOf(peer)]).some((r) => r.event === 'obtained'), `${peer.id} obtained nothing itself`);
      }

      // The renewed certificate's due time is the same in every process (jitter seeded by its serial): all three
      // are due at once, one renews under the lock, the other two find its certificate and adopt it.
      const before = fleet.map((w) => w.reports.length);
      const outcomes = await Promise.all(
        fleet.map((w, i) =>
          w.waitFor((r) => (r.event === 'obtained' || r.event === 'loaded') && w.reports.indexOf(r) >= (before[i] as number), 'the next renewal or its adoption'),
        ),
      );
      assert.equal(outcomes.filter((r) => r.event === 'obtained').length, 1, JSON.stringify(outcomes));
      assert.equal(pebble.issuedCount() - issuedBefore, 3, 'one more certificate for the whole fleet');
      const third = await loadCertificateSet(storage.inspector, issuerKeyFromDirectoryUrl(pebble.directoryUrl), name);
      assert.notEqual(third.meta.serialNumber, newSerial);
      for (const w of fleet) assert.equal((await handshake(w.port, name, root)).serialNumber, third.meta.serialNumber.toUpperCase(), `${w.id} serves it`);
    } finally {
      await stopAll(workers.splice(0));
      await storage.cleanup();
    }
  });
});
