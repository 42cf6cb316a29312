/**
 * Fleet tests 1 and 2: three processes sharing one storage (Redis, PostgreSQL,
 * etcd, one FileStorage directory) manageSync the same ten names at the same moment:
 * Pebble issues exactly ten certificates, and every process serves all ten.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startPebble, type PebbleHandle } from '../helpers/pebble.js';
import { skipUnlessInstalled } from '../helpers/system.js';
import { handshake } from '../helpers/tls-client.js';
import { loadAllSets, sharedStorage, startWorkers, stopAll, storageSkipReason, workerConfig, type StorageKind, type Worker } from './fleet.js';

const pebbleSkip = skipUnlessInstalled('pebble', 'pebble-challtestsrv');
const KINDS = ['redis', 'postgres', 'etcd', 'file'] as const satisfies readonly StorageKind[];
const storageSkip = Object.fromEntries(await Promise.all(KINDS.map(async (k) => [k, await storageSkipReason(k)] as const))) as Record<StorageKind, string | false>;
const NAMES = Array.from({ length: 10 }, (_, i) => `site${i}.fleet.test`);

describe('fleet: ten names, three processes, one storage', { skip: pebbleSkip }, () => {
  let pebble: PebbleHandle;
  let root: string;
  const workers: Worker[] = [];

  before(async () => {
    pebble = await startPebble();
    root = await pebble.rootPem();
  });
  after(async () => {
    await stopAll(workers);
    await pebble?.stop();
  });

  for (const kind of KINDS) {
    test(`${kind}: each certificate is issued once and every process serves all ten`, { skip: pebbleSkip || storageSkip[kind] }, async () => {
      const storage = await sharedStorage(kind, 5_000);
      try {
        // Worker a also answers Pebble's HTTP-01 requests for the whole fleet; b and c cannot bind that port.
        const fleet = await startWorkers([
          workerConfig('a', storage, pebble, { challengePort: pebble.httpPort }),
          workerConfig('b', storage, pebble),
          workerConfig('c', storage, pebble),
        ]);
        workers.push(...fleet);
        const issuedBefore = pebble.issuedCount();

        // Every process is up before any starts, so the three calls overlap.
        const requests = fleet.map((w) => w.send({ cmd: 'manage', names: NAMES }));
        const replies = await Promise.all(fleet.map((w, i) => w.reply(requests[i] as number)));
        for (const reply of replies) assert.equal(reply.event, 'managed', JSON.stringify(reply));

        assert.equal(pebble.issuedCount() - issuedBefore, NAMES.length, 'exactly one certificate per name');
        const obtainedBy = fleet.flatMap((w) => w.reports.filter((r) => r.event === 'obtained').map((r) => (r.names as string[])[0]));
        assert.deepEqual([...obtainedBy].sort(), [...NAMES].sort(), 'each name obtained by exactly one process');

        const { sets, pending } = await loadAllSets(storage.inspector);
        assert.equal(sets.length, NAMES.length);
        assert.deepEqual(pending, []);
        const storedSerial = new Map(sets.map((s) => [s.meta.names[0], s.meta.serialNumber.toUpperCase()]));

        for (const worker of fleet) {
          for (const name of NAMES) {
            const peer = await handshake(worker.port, name, root);
            assert.ok(peer.authorized, `${worker.id} ${name}: ${peer.authorizationError}`);
            assert.equal(peer.subjectAltName, `DNS:${name}`);
            assert.equal(peer.serialNumber, storedSerial.get(name), `${worker.id} serves the stored certificate for ${name}`);
          }
        }

        const exits = await Promise.all(fleet.map((w) => w.stop()));
        assert.deepEqual(exits, fleet.map(() => ({ code: 0, signal: null })), 'every process closes cleanly on SIGTERM');
      } finally {
        await stopAll(workers.splice(0));
        await storage.cleanup();
      }
    });
  }
});
