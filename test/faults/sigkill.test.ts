/**
 * Fault 5: a keeper process SIGKILLed at random moments, during its start-up
 * issuances and during renewals, in a loop that goes on until Pebble has
 * issued at least 100 certificates to the killed processes. After each kill every certificate in storage
 * loads complete with a matching key; the next process becomes ready (no
 * lock left by the dead one blocks it much longer than the lock's stale
 * period) and serves exactly what is stored.
 */
import assert from 'node:assert/strict';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { listCertificateNames, loadCertificateSet } from '../../src/storage/certificates.js';
import { FileStorage } from '../../src/storage/file.js';
import { startPebble, type PebbleHandle } from '../helpers/pebble.js';
import { skipUnlessInstalled } from '../helpers/system.js';
import { handshake } from '../helpers/tls-client.js';
import { settle } from './helpers.js';
import { KeeperWorker } from './worker-harness.js';

const skip = skipUnlessInstalled('pebble');
const ISSUANCES = 100;
/** A cap, in case issuances per round drop on a slow machine. */
const MAX_ROUNDS = 60;
const LOCK_STALE_MS = 2_000;

describe('fault: SIGKILL during issuance and renewal', { skip }, () => {
  let pebble: PebbleHandle;
  let dir: string;
  before(async () => {
    // Validation always succeeds, so no process needs Pebble's challenge port.
    pebble = await startPebble({ alwaysValid: true, startChalltestsrv: false });
    dir = await mkdtemp(join(tmpdir(), 'certkeeper-sigkill-'));
  });
  after(async () => {
    await pebble?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test(`kills during ${ISSUANCES} issuances and renewals: storage stays consistent, the next process serves what is stored`, { timeout: 300_000 }, async (t) => {
    const storageDir = join(dir, 'storage');
    const base = ['k1.example.test', 'k2.example.test', 'k3.example.test'];
    const inspector = new FileStorage({ root: storageDir });
    let killedInStartup = 0;
    let renewalsSeen = 0;
    let slowestReadyMs = 0;
    let slowestFirstRenewalMs = 0;

    const checkStorage = async (): Promise<Map<string, string>> => {
      const serials = new Map<string, string>();
      for (const ref of await listCertificateNames(inspector).catch(() => [])) {
        const set = await loadCertificateSet(inspector, ref.issuerKey, ref.name); // throws if torn
        assert.ok(new X509Certificate(set.certPem).checkPrivateKey(createPrivateKey(set.keyPem)), `${ref.name}: key matches`);
        serials.set(ref.name, set.meta.serialNumber);
      }
      return serials;
    };

    const issuedBefore = pebble.issuedCount();
    let rounds = 0;
    for (let round = 0; round < MAX_ROUNDS && pebble.issuedCount() - issuedBefore < ISSUANCES; round++) {
      rounds++;
      // A new name each round, so every start-up has an issuance to be killed in.
      const names = [...base, `r${round}.example.test`];
      const worker = new KeeperWorker({ storageDir, lockStaleMs: LOCK_STALE_MS, directoryUrl: pebble.directoryUrl, caPem: pebble.pebbleCaPem, names, churn: true });
      try {
        // Every third round dies during start-up (loading, locking, issuing its new name); the others during renewals.
        if (round % 3 === 1) {
          await settle(200 + Math.floor(Math.random() * 1_500));
          if (!worker.reports.some((r) => r.event === 'ready')) killedInStartup++;
          await worker.kill('SIGKILL');
        } else {
          const ready = await worker.waitFor('ready', LOCK_STALE_MS + 30_000);
          slowestReadyMs = Math.max(slowestReadyMs, ready.ms as number);
          const stored = await checkStorage();
          for (const name of names) assert.ok(stored.has(name), `${name} stored`);
          const root = await pebble.rootPem();
          for (const name of names) {
            const peer = await handshake(ready.port as number, name, root);
            assert.equal(peer.serialNumber, stored.get(name)?.toUpperCase(), `${name}: the new process serves the stored certificate`);
          }
          // The first renewal may need a lock the previous process died holding: it must be taken over.
          const churnStarted = Date.now();
          worker.send('churn');
          await worker.waitFor('renewed', LOCK_STALE_MS + 30_000);
          slowestFirstRenewalMs = Math.max(slowestFirstRenewalMs, Date.now() - churnStarted);
          await settle(Math.floor(Math.random() * 1_500));
          renewalsSeen += worker.reports.filter((r) => r.event === 'renewed').length;
          await worker.kill('SIGKILL');
        }
        await checkStorage();
      } finally {
        await worker.kill('SIGKILL');
      }
    }
    t.diagnostic(`${pebble.issuedCount() - issuedBefore} certificates issued over ${rounds} rounds, ${killedInStartup} kills during start-up, ${renewalsSeen} renewals completed before a kill, slowest start-up ${slowestReadyMs} ms, slowest first renewal ${slowestFirstRenewalMs} ms (lock stale period ${LOCK_STALE_MS} ms)`);
    assert.ok(pebble.issuedCount() - issuedBefore >= ISSUANCES, `at least ${ISSUANCES} issuances and renewals happened among the kills`);
    assert.ok(renewalsSeen > 0, 'kills did land among renewals');
    // A lock a dead process held and nobody took over would leave waitFor('ready'/'renewed') waiting past its
    // limit (the stale period + 30 s) and fail there; the slowest times are reported, not asserted (shared machine).
  });
});
