/**
 * Issue 14, defect 4: a rejectedIdentifier answer is final for every path,
 * not only for the renewal timer. TLS handshakes for the name (managed, and
 * on-demand) and restarts make no new order; renew(name, { force: true })
 * makes exactly one. Before, handshakes ordered at +2, +17 and +137 minutes
 * and a restart forgot the refusal.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { AcmeProblemError, CertKeeperError, ManageError } from '../../src/errors.js';
import { CertKeeper } from '../../src/manager/keeper.js';
import { FileStorage } from '../../src/storage/file.js';
import { FakeClock } from '../../src/testing/fake-clock.js';
import { startPebble, type PebbleHandle } from '../helpers/pebble.js';
import { skipUnlessInstalled } from '../helpers/system.js';
import { handshake } from '../helpers/tls-client.js';
import { closeServer, listen, pebbleOptions, settle } from './helpers.js';

const skip = skipUnlessInstalled('pebble', 'pebble-challtestsrv');
const MINUTE = 60_000;
const NAME = 'blocked.example.test';

describe('fault: rejectedIdentifier stays final for handshakes and restarts', { skip }, () => {
  let pebble: PebbleHandle;
  let root: string;
  let dir: string;
  before(async () => {
    pebble = await startPebble({ domainBlocklist: [NAME] });
    root = await pebble.rootPem();
    dir = await mkdtemp(join(tmpdir(), 'certkeeper-rejected-final-'));
  });
  after(async () => {
    await pebble?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const newOrders = (): number => pebble.output().match(/POST \/order-plz/g)?.length ?? 0;

  /** A handshake for the name on the keeper's server; it fails (no certificate), which is the point. */
  async function knock(port: number): Promise<void> {
    await handshake(port, NAME, root).catch(() => undefined);
    await settle(300);
  }

  async function serve(keeper: CertKeeper): Promise<{ port: number; close: () => Promise<void> }> {
    const server = https.createServer(keeper.tlsOptions(), (_req, res) => res.end('ok'));
    const port = await listen(server);
    return { port, close: () => closeServer(server) };
  }

  test('handshakes at +2, +17, +137 minutes, a restart, and an on-demand keeper make no order; a forced renew makes one', { timeout: 120_000 }, async () => {
    const clock = new FakeClock(Date.now());
    const start = clock.now();
    const base = newOrders();

    const storage1 = new FileStorage({ root: dir });
    const first = new CertKeeper(pebbleOptions(pebble, storage1, { clock }));
    const server1 = await serve(first);
    try {
      const error = await first.manageSync([NAME]).then(() => assert.fail('should fail'), (e: unknown) => e);
      assert.ok(error instanceof ManageError);
      const problem = error.failures[0]?.error;
      assert.ok(problem instanceof AcmeProblemError && problem.shortType === 'rejectedIdentifier', String(problem));
      assert.equal(newOrders() - base, 1);
      for (const at of [2, 17, 137]) {
        await clock.set(start + at * MINUTE);
        await knock(server1.port);
        assert.equal(newOrders() - base, 1, `no order from a handshake at +${at} min`);
      }
    } finally {
      await server1.close();
      await first.close();
      await storage1.close();
    }

    // Restart on the same storage: the refusal is remembered.
    const storage2 = new FileStorage({ root: dir });
    const second = new CertKeeper(pebbleOptions(pebble, storage2, { clock }));
    const server2 = await serve(second);
    try {
      const error = await second.manageSync([NAME]).then(() => assert.fail('should fail'), (e: unknown) => e);
      assert.ok(error instanceof ManageError);
      const cause = error.failures[0]?.error;
      assert.ok(cause instanceof CertKeeperError && cause.code === 'ERR_BACKOFF', String(cause));
      assert.match(cause.message, /rejectedIdentifier/);
      assert.equal(second.status(NAME).nextRenewalAt, undefined, 'nothing scheduled');
      assert.equal(newOrders() - base, 1, 'no order after a restart');
      await clock.advance(3 * 24 * 60 * MINUTE);
      await knock(server2.port);
      assert.equal(newOrders() - base, 1, 'no order from a handshake after the restart');
    } finally {
      await server2.close();
      await second.close();
      await storage2.close();
    }

    // An on-demand keeper that does not manage the name: its handshake asks storage first.
    const storage3 = new FileStorage({ root: dir });
    const third = new CertKeeper(pebbleOptions(pebble, storage3, { clock, onDemand: { decide: () => true } }));
    const server3 = await serve(third);
    try {
      await knock(server3.port);
      await knock(server3.port);
      assert.equal(newOrders() - base, 1, 'no on-demand order for a name refused finally');
    } finally {
      await server3.close();
      await third.close();
      await storage3.close();
    }

    // Only an operator's forced renew asks again, exactly once.
    const storage4 = new FileStorage({ root: dir });
    const fourth = new CertKeeper(pebbleOptions(pebble, storage4, { clock }));
    try {
      await fourth.manageSync([NAME]).catch(() => undefined);
      assert.equal(newOrders() - base, 1);
      await assert.rejects(fourth.renew(NAME, { force: true }), AcmeProblemError);
      assert.equal(newOrders() - base, 2, 'a forced renew makes exactly one order');
      await clock.advance(3 * 24 * 60 * MINUTE);
      await settle(200);
      assert.equal(newOrders() - base, 2, 'and the refusal is final again');
    } finally {
      await fourth.close();
      await storage4.close();
    }
  });
});
