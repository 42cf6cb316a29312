/**
 * Fleet tests 3-5: a challenge answered by another process; a lock holder
 * killed mid-order (SIGKILL) and one frozen past its lease (SIGSTOP), on every
 * shared storage. Short leases (1.5 s; 2 s for files, their minimum) keep the
 * takeovers quick.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { loadCertificateSet } from 'certkeeper'; // one copy with the installed adapters' errors
import { certificateLockName, issuerKeyFromDirectoryUrl } from '../../src/storage/layout.js';
import { startPebble, type PebbleHandle } from '../helpers/pebble.js';
import { skipUnlessInstalled } from '../helpers/system.js';
import { handshake } from '../helpers/tls-client.js';
import { loadAllSets, sharedStorage, startWorkers, stopAll, storageSkipReason, workerConfig, type StorageKind, type Worker } from './fleet.js';

const pebbleSkip = skipUnlessInstalled('pebble', 'pebble-challtestsrv');
const KINDS = ['redis', 'postgres', 'etcd', 'file'] as const satisfies readonly StorageKind[];
const storageSkip = Object.fromEntries(await Promise.all(KINDS.map(async (k) => [k, await storageSkipReason(k)] as const))) as Record<StorageKind, string | false>;
const LEASE_MS = 1_500;

describe('fleet: challenges and locks across processes', { skip: pebbleSkip }, () => {
  let pebble: PebbleHandle;
  let root: string;
  let issuerKey: string;
  const workers: Worker[] = [];

  before(async () => {
    pebble = await startPebble();
    root = await pebble.rootPem();
    issuerKey = issuerKeyFromDirectoryUrl(pebble.directoryUrl);
  });
  after(async () => {
    await stopAll(workers);
    await pebble?.stop();
  });

  test('HTTP-01: a process that placed no order answers the validation, and the order succeeds', { skip: pebbleSkip || storageSkip.redis }, async () => {
    const storage = await sharedStorage('redis', LEASE_MS);
    try {
      // The responder manages nothing: it knows the token only from the shared storage.
      const [responder, orderer] = await startWorkers([
        workerConfig('responder', storage, pebble, { challengePort: pebble.httpPort }),
        workerConfig('orderer', storage, pebble),
      ]);
      workers.push(responder!, orderer!);
      const name = 'answer.fleet.test';
      const issuedBefore = pebble.issuedCount();
      const reply = await orderer!.request({ cmd: 'manage', names: [name] });
      assert.equal(reply.event, 'managed', JSON.stringify(reply));
      assert.equal(pebble.issuedCount() - issuedBefore, 1);
      assert.ok(orderer!.reports.some((r) => r.event === 'obtained'), 'the orderer obtained the certificate itself');

      const answered = responder!.reports.filter((r) => r.event === 'challenge');
      assert.ok(answered.length > 0, 'Pebble validated against the responder process');
      for (const r of answered) {
        assert.equal(r.host, `${name}:${pebble.httpPort}`);
        assert.match(r.url as string, /^\/\.well-known\/acme-challenge\/[A-Za-z0-9_-]+$/);
        assert.equal(r.status, 200);
      }
      const served = await handshake(orderer!.port, name, root);
      assert.ok(served.authorized, served.authorizationError);
    } finally {
      await stopAll(workers.splice(0));
      await storage.cleanup();
    }
  });

  test('redis: a renewal frozen past its lease neither overwrites the newer renewal nor marks it as failed', { skip: pebbleSkip || storageSkip.redis }, async () => {
    const storage = await sharedStorage('redis', LEASE_MS);
    try {
      const [peer, sleeper] = await startWorkers([
        workerConfig('peer', storage, pebble, { challengePort: pebble.httpPort }),
        workerConfig('sleeper', storage, pebble, { pauseAt: 'after-lease-check' }),
      ]);
      workers.push(peer!, sleeper!);
      const name = 'renew-stop.fleet.test';
      assert.equal((await peer!.request({ cmd: 'manage', names: [name] })).event, 'managed');
      assert.equal((await sleeper!.request({ cmd: 'manage', names: [name] })).event, 'managed');
      const issuedBefore = pebble.issuedCount();

      const sleeperRequest = sleeper!.send({ cmd: 'renew', name });
      assert.equal((await sleeper!.paused()).lock, certificateLockName(name));
      sleeper!.child.kill('SIGSTOP');
      const peerReply = await peer!.request({ cmd: 'renew', name });
      assert.equal(peerReply.event, 'renewed', JSON.stringify(peerReply));
      sleeper!.child.kill('SIGCONT');
      sleeper!.send({ cmd: 'continue' });
      const sleeperReply = await sleeper!.reply(sleeperRequest);
      assert.deepEqual((sleeperReply.failures as { code: string }[] | undefined)?.map((f) => f.code), ['ERR_LOCK_LOST'], JSON.stringify(sleeperReply));

      assert.equal(pebble.issuedCount() - issuedBefore, 2);
      const stored = await loadCertificateSet(storage.inspector, issuerKey, name);
      assert.equal(stored.meta.serialNumber, peerReply.serial, 'the newer renewal stays in storage');
      // The lost race is not a failure of the stored certificate: peers loading it must not inherit a backoff.
      assert.equal(stored.meta.renewal?.failures ?? 0, 0, JSON.stringify(stored.meta.renewal));
    } finally {
      await stopAll(workers.splice(0));
      await storage.cleanup();
    }
  });

  for (const kind of KINDS) {
    test(`${kind}: SIGKILL of the lock holder mid-order; another process completes the name after the lease, storage stays sound`, { skip: pebbleSkip || storageSkip[kind] }, async () => {
      const storage = await sharedStorage(kind, LEASE_MS);
      try {
        const [survivor, victim] = await startWorkers([
          workerConfig('survivor', storage, pebble, { challengePort: pebble.httpPort }),
          workerConfig('victim', storage, pebble, { pauseAt: 'token-stored' }),
        ]);
        workers.push(survivor!, victim!);
        const name = `kill-${kind}.fleet.test`;
        const issuedBefore = pebble.issuedCount();

        // The victim holds the name's lock, has placed its order and filed its token; then it dies.
        victim!.send({ cmd: 'manage', names: [name] });
        const pause = await victim!.paused();
        assert.ok((pause.key as string).includes(`/challenge_tokens/${name}/`), JSON.stringify(pause));
        const waiting = survivor!.send({ cmd: 'manage', names: [name] });
        victim!.child.kill('SIGKILL');
        assert.equal((await victim!.exited).signal, 'SIGKILL');

        const reply = await survivor!.reply(waiting);
        assert.equal(reply.event, 'managed', JSON.stringify(reply));
        assert.equal(pebble.issuedCount() - issuedBefore, 1, 'only the survivor\'s order was finalized');
        const set = await loadCertificateSet(storage.inspector, issuerKey, name);
        assert.equal(set.meta.serialNumber, (reply.serials as Record<string, string>)[name]);
        const served = await handshake(survivor!.port, name, root);
        assert.ok(served.authorized, served.authorizationError);
        assert.equal(served.serialNumber, set.meta.serialNumber.toUpperCase());

        const { sets, pending } = await loadAllSets(storage.inspector);
        assert.deepEqual(sets.map((s) => s.meta.names), [[name]]);
        assert.deepEqual(pending, [], 'no half-written set left behind');
      } finally {
        await stopAll(workers.splice(0));
        await storage.cleanup();
      }
    });

    test(`${kind}: a holder frozen (SIGSTOP) between its lease check and its write does not overwrite the certificate stored meanwhile, and then serves it`, { skip: pebbleSkip || storageSkip[kind] }, async () => {
      const storage = await sharedStorage(kind, LEASE_MS);
      try {
        const [peer, sleeper] = await startWorkers([
          workerConfig('peer', storage, pebble, { challengePort: pebble.httpPort }),
          workerConfig('sleeper', storage, pebble, { pauseAt: 'after-lease-check' }),
        ]);
        workers.push(peer!, sleeper!);
        const name = `stop-${kind}.fleet.test`;
        const issuedBefore = pebble.issuedCount();

        // The sleeper's certificate is issued and its lease checked; it is frozen right before it writes the set.
        const sleeperRequest = sleeper!.send({ cmd: 'manage', names: [name] });
        const pause = await sleeper!.paused();
        assert.equal(pause.lock, certificateLockName(name));
        sleeper!.child.kill('SIGSTOP');

        // Its lease can no longer be refreshed: the peer takes the lock once it expires and stores its own certificate.
        const peerReply = await peer!.request({ cmd: 'manage', names: [name] });
        assert.equal(peerReply.event, 'managed', JSON.stringify(peerReply));
        const newer = (peerReply.serials as Record<string, string>)[name];
        assert.ok(newer);

        sleeper!.child.kill('SIGCONT');
        sleeper!.send({ cmd: 'continue' });
        const sleeperReply = await sleeper!.reply(sleeperRequest);
        assert.equal(sleeperReply.event, 'failed', JSON.stringify(sleeperReply));
        const failures = sleeperReply.failures as { code: string }[];
        assert.deepEqual(failures.map((f) => f.code), ['ERR_LOCK_LOST']);

        assert.equal(pebble.issuedCount() - issuedBefore, 2, 'both orders were finalized at the CA');
        const stored = await loadCertificateSet(storage.inspector, issuerKey, name);
        assert.equal(stored.meta.serialNumber, newer, 'the newer certificate stays in storage');
        const served = await handshake(peer!.port, name, root);
        assert.equal(served.serialNumber, newer.toUpperCase());
        const { pending } = await loadAllSets(storage.inspector);
        assert.deepEqual(pending, []);
        // The sleeper's next attempt finds the peer's set in storage and serves it too.
        assert.equal((await sleeper!.request({ cmd: 'manage', names: [name] })).event, 'managed');
        assert.equal((await handshake(sleeper!.port, name, root)).serialNumber, newer.toUpperCase());
      } finally {
        await stopAll(workers.splice(0));
        await storage.cleanup();
      }
    });
  }
});
