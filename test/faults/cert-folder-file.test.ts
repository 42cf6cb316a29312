/**
 * Issue 14, defect 6: a regular file where a certificate's folder should be.
 * The set cannot be stored there, so it must not be ordered: the check before
 * ordering writes a probe at the certificate's own path (the general storage
 * check writes elsewhere). Zero orders, a typed ERR_STORAGE, cert_failed, and
 * no order again (start-ups and backoff retries) while the file stays; once
 * it is gone the name is obtained. Before, Pebble issued a certificate on
 * every start-up and retry, and the store threw it away (ENOTDIR).
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CertKeeperError, ManageError, StorageError } from '../../src/errors.js';
import { CertKeeper } from '../../src/manager/keeper.js';
import { FileStorage } from '../../src/storage/file.js';
import { certificateKeys, issuerKeyFromDirectoryUrl } from '../../src/storage/layout.js';
import { FakeClock } from '../../src/testing/fake-clock.js';
import { startPebble, type PebbleHandle } from '../helpers/pebble.js';
import { skipUnlessInstalled } from '../helpers/system.js';
import { nextEvent, pebbleOptions, waitUntil, within } from './helpers.js';

const skip = skipUnlessInstalled('pebble', 'pebble-challtestsrv');

describe('fault: a file at the certificate folder path', { skip }, () => {
  let pebble: PebbleHandle;
  let dir: string;
  before(async () => {
    pebble = await startPebble();
    dir = await mkdtemp(join(tmpdir(), 'certkeeper-cert-folder-file-'));
  });
  after(async () => {
    await pebble?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const newOrders = (): number => pebble.output().match(/POST \/order-plz/g)?.length ?? 0;

  test('no order while the set cannot be stored: ERR_STORAGE, cert_failed, backoff; obtained once the file is gone', { timeout: 120_000 }, async () => {
    const name = 'planted.example.test';
    const folder = join(dir, certificateKeys(issuerKeyFromDirectoryUrl(pebble.directoryUrl), name).prefix);
    await mkdir(join(folder, '..'), { recursive: true });
    await writeFile(folder, 'in the way');
    const clock = new FakeClock(Date.now());
    const base = newOrders();

    for (let start = 0; start < 3; start++) {
      const storage = new FileStorage({ root: dir });
      const keeper = new CertKeeper(pebbleOptions(pebble, storage, { clock }));
      try {
        const failed = start === 0 ? nextEvent(keeper, 'cert_failed') : undefined;
        const error = await keeper.manageSync([name]).then(() => assert.fail('should fail'), (e: unknown) => e);
        assert.ok(error instanceof ManageError);
        if (failed) {
          const cause = error.failures[0]?.error;
          assert.ok(cause instanceof StorageError, String(cause));
          assert.equal(cause.code, 'ERR_STORAGE');
          const event = await within(failed, 'cert_failed');
          assert.equal(event.error, cause);
          assert.equal(keeper.status(name).lastError?.code, 'ERR_STORAGE');
        } else {
          assert.equal((error.failures[0]?.error as CertKeeperError).code, 'ERR_BACKOFF', 'a restart waits for the persisted backoff');
          assert.equal(keeper.status(name).lastError?.code, 'ERR_STORAGE');
        }
        assert.equal(newOrders() - base, 0, `start-up ${start}: no order`);
        // Walk through the backoff: each retry checks again, and orders nothing.
        for (let retry = 0; retry < 3; retry++) {
          // Rescheduled right after the cert_failed event of the previous attempt.
          await waitUntil(() => (keeper.status(name).nextRenewalAt?.getTime() ?? 0) > clock.now(), 'a retry to be scheduled');
          const at = keeper.status(name).nextRenewalAt as Date;
          const retried = nextEvent(keeper, 'cert_failed');
          await clock.set(at.getTime() + 1);
          await within(retried, `retry ${retry} of start-up ${start}`);
        }
        assert.equal(keeper.status(name).failures, 4 + 3 * start, 'the failure count carries over restarts');
        assert.equal(newOrders() - base, 0, `start-up ${start}: no order on any retry`);
      } finally {
        await keeper.close();
        await storage.close();
      }
    }
    assert.equal(await readFile(folder, 'utf8'), 'in the way', 'the planted file is left alone');

    await rm(folder);
    const storage = new FileStorage({ root: dir });
    const keeper = new CertKeeper(pebbleOptions(pebble, storage, { clock }));
    try {
      // Still in its backoff after a restart; an operator's forced renew tries now.
      await assert.rejects(keeper.manageSync([name]), ManageError);
      await keeper.renew(name, { force: true });
      assert.equal(keeper.status(name).state, 'valid');
      assert.equal(newOrders() - base, 1, 'one order once the set can be stored');
    } finally {
      await keeper.close();
      await storage.close();
    }
  });
});
