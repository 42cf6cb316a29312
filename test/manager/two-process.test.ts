import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CertKeeper } from '../../src/manager/keeper.js';
import { loadCertificateSet } from '../../src/storage/certificates.js';
import { FileStorage } from '../../src/storage/file.js';
import { startPebble, type PebbleHandle } from '../helpers/pebble.js';
import { silentLogger } from '../helpers/logging.js';
import { skipUnlessInstalled } from '../helpers/system.js';
import { handshake } from '../helpers/tls-client.js';
import { closeServer } from '../faults/helpers.js';
import { KeeperWorker } from '../faults/worker-harness.js';

const skip = skipUnlessInstalled('pebble', 'pebble-challtestsrv');

describe('two keepers in two processes on one FileStorage', { skip }, () => {
  let pebble: PebbleHandle;
  let dir: string;
  before(async () => {
    pebble = await startPebble();
    dir = await mkdtemp(join(tmpdir(), 'certkeeper-two-'));
  });
  after(async () => {
    await pebble?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test('both manageSync the same 5 names: 5 certificates issued in total, both serve all 5', { timeout: 120_000 }, async () => {
    const storageDir = join(dir, 'storage');
    const names = ['p1.example.test', 'p2.example.test', 'p3.example.test', 'p4.example.test', 'p5.example.test'];
    // This process owns Pebble's HTTP-01 port and answers from the shared storage through a keeper's handler.
    const responder = new CertKeeper({
      ca: pebble.directoryUrl,
      caCertificates: pebble.pebbleCaPem,
      agreeToTerms: true,
      storage: new FileStorage({ root: storageDir }),
      challenges: { http01: { listener: false }, tlsAlpn01: false },
      logger: silentLogger(),
    });
    const challengeServer = http.createServer(responder.httpChallengeHandler());
    await new Promise<void>((resolve) => challengeServer.listen(pebble.httpPort, '127.0.0.1', () => resolve()));
    const config = { storageDir, lockStaleMs: 10_000, directoryUrl: pebble.directoryUrl, caPem: pebble.pebbleCaPem, names };
    const workers = [new KeeperWorker(config), new KeeperWorker(config)];
    try {
      const issued = pebble.issuedCount();
      const ready = await Promise.all(workers.map((w) => w.waitFor('ready')));
      assert.equal(pebble.issuedCount(), issued + 5, 'each name ordered once across both processes');
      const root = await pebble.rootPem();
      const inspector = new FileStorage({ root: storageDir });
      for (const name of names) {
        const issuerKey = (await inspector.list('certificates', false))[0]!.split('/').pop()!;
        const stored = await loadCertificateSet(inspector, issuerKey, name);
        for (const report of ready) {
          const peer = await handshake(report.port as number, name, root);
          assert.ok(peer.authorized, peer.authorizationError);
          assert.equal(peer.subjectAltName, `DNS:${name}`);
          assert.equal(peer.serialNumber, stored.meta.serialNumber.toUpperCase(), 'both serve the one stored certificate');
        }
      }
    } finally {
      await Promise.all(workers.map((w) => w.stop()));
      await closeServer(challengeServer);
      await responder.close();
    }
  });
});
