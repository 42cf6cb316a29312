/**
 * The folder probe (can the set be stored at its own path?) runs while the key, the CSR and the CA session are
 * made, and must pass before anything is ordered: with the probe held, the account is registered but no order
 * is placed; released, the name is obtained with one order.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { CertKeeper } from '../../src/manager/keeper.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import { silentLogger } from '../helpers/logging.js';
import { startPebble, type PebbleHandle } from '../helpers/pebble.js';
import { skipUnlessInstalled } from '../helpers/system.js';

const skip = skipUnlessInstalled('pebble', 'pebble-challtestsrv');

/** A storage whose writes of a `.probe` wait until released. */
class HeldProbeStorage extends MemoryStorage {
  #release: () => void = () => undefined;
  readonly #released = new Promise<void>((resolve) => {
    this.#release = resolve;
  });
  probeWaiting = false;

  override async store(key: string, value: Uint8Array): Promise<void> {
    if (key.endsWith('.probe')) {
      this.probeWaiting = true;
      await this.#released;
    }
    return super.store(key, value);
  }

  release(): void {
    this.#release();
  }
}

async function until(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 1000 && !check(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
  assert.ok(check(), what);
}

describe('the folder probe overlaps the order preparation', { skip }, () => {
  let pebble: PebbleHandle;
  before(async () => {
    pebble = await startPebble();
  });
  after(async () => {
    await pebble?.stop();
  });
  const count = (path: string): number => pebble.output().split(`POST ${path}`).length - 1;

  test('the account is registered while the probe runs; newOrder waits for it to pass', { timeout: 60_000 }, async () => {
    const storage = new HeldProbeStorage();
    const keeper = new CertKeeper({
      ca: pebble.directoryUrl,
      caCertificates: pebble.pebbleCaPem,
      agreeToTerms: true,
      email: 'admin@example.test',
      storage,
      challenges: { http01: { port: pebble.httpPort, host: '127.0.0.1' }, tlsAlpn01: false as const },
      logger: silentLogger(),
    });
    try {
      const accounts = count('/sign-me-up');
      const orders = count('/order-plz');
      const managed = keeper.manageSync(['probe-overlap.example.test']);
      await until(() => storage.probeWaiting, 'the probe started');
      await until(() => count('/sign-me-up') > accounts, 'the account was registered while the probe was held');
      // The session is ready and the probe still held: nothing may be ordered yet.
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.equal(count('/order-plz'), orders, 'no order while the probe has not passed');
      storage.release();
      await managed;
      assert.equal(count('/order-plz'), orders + 1);
      assert.equal(keeper.status('probe-overlap.example.test').state, 'valid');
    } finally {
      storage.release();
      await keeper.close();
    }
  });
});
