/**
 * Renewals yield to traffic (RenewalPacer, CpuOffload): renewals of served certificates are rate-limited while the
 * machine is busy and made on the worker thread; obtaining a missing certificate is never held back.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { CertKeeper } from '../../src/manager/keeper.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import { silentLogger } from '../helpers/logging.js';

const base = { challenges: { http01: false as const, tlsAlpn01: { listener: false } }, logger: silentLogger(), issuers: [{ type: 'internal' as const }] };
const names = ['p1.example.test', 'p2.example.test', 'p3.example.test', 'p4.example.test'];

/**
 * Obtains as they start (cert_obtaining, emitted under the lock, after pacing) and end, with the most that
 * were in progress at once. Counts and order only: wall time on a loaded machine proves nothing.
 */
function obtains(keeper: CertKeeper, renewal: boolean): { started: string[]; peakInProgress: number } {
  const seen = { started: [] as string[], peakInProgress: 0 };
  let inProgress = 0;
  keeper.on('cert_obtaining', (e) => {
    if (e.renewal !== renewal) return;
    seen.started.push(e.names.join(','));
    seen.peakInProgress = Math.max(seen.peakInProgress, ++inProgress);
  });
  const done = (e: { renewal: boolean }): void => {
    if (e.renewal === renewal) inProgress--;
  };
  keeper.on('cert_obtained', done);
  keeper.on('cert_failed', done);
  return seen;
}

describe('renewal pacing', () => {
  test('while busy, renewals of served certificates start at the busy rate; first obtains do not wait', async () => {
    // No machine has a million idle CPUs: the pacer always sees a busy machine.
    const keeper = new CertKeeper({ ...base, storage: new MemoryStorage(), renewalPacing: { minIdleCpus: 1_000_000, renewalsPerSecondWhenBusy: 4 } });
    try {
      const firsts = obtains(keeper, false);
      await keeper.manageSync(names);
      assert.equal(firsts.started.length, 4);
      // A busy machine at 4 renewals a second: had the first obtains gone through the pacer, it would have counted them.
      assert.deepEqual(keeper.orderStats().pacedRenewals, { admitted: 0, admittedWhileBusy: 0, waiting: 0 }, 'first obtains are not paced');
      assert.equal(firsts.peakInProgress, 4, 'the four first obtains ran together');

      const renewals = obtains(keeper, true);
      const serials = names.map((n) => keeper.status(n).serialNumber);
      await Promise.all(names.map((n) => keeper.renew(n, { force: true })));
      assert.deepEqual(
        names.map((n, i) => keeper.status(n).serialNumber !== serials[i]),
        [true, true, true, true],
        'every certificate was renewed',
      );
      // Each renewal was admitted on its own, by the busy branch (one per 1/rate seconds: its timing is
      // tested on a fake clock in test/maintenance/pacer.test.ts).
      assert.equal(renewals.started.length, 4);
      const stats = keeper.orderStats();
      assert.deepEqual(stats.pacedRenewals, { admitted: 4, admittedWhileBusy: 4, waiting: 0 });
      // The internal CA signs on the worker thread (4 first obtains + 4 renewals); renewals also make their key and CSR there.
      assert.equal(stats.workerTasks, 4 + 4 * 2);
    } finally {
      await keeper.close();
    }
  });

  test('renewalPacing: false starts renewals at once', async () => {
    const keeper = new CertKeeper({ ...base, storage: new MemoryStorage(), renewalPacing: false });
    try {
      await keeper.manageSync(names);
      const renewals = obtains(keeper, true);
      await Promise.all(names.map((n) => keeper.renew(n, { force: true })));
      assert.equal(renewals.started.length, 4);
      assert.equal(renewals.peakInProgress, 4, 'all four renewals were in progress together: none waited for another');
      assert.equal(keeper.orderStats().pacedRenewals, undefined);
    } finally {
      await keeper.close();
    }
  });

  test('close() while renewals wait for the pacer rejects them and leaves no timer behind', async () => {
    const keeper = new CertKeeper({ ...base, storage: new MemoryStorage(), renewalPacing: { minIdleCpus: 1_000_000, renewalsPerSecondWhenBusy: 0.01 } });
    await keeper.manageSync(names);
    const first = keeper.renew(names[0] as string, { force: true });
    await first; // the first goes at once
    const waiting = names.slice(1).map((n) => keeper.renew(n, { force: true }).then(
      () => 'renewed',
      (e: { code?: string }) => e.code,
    ));
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(keeper.orderStats().pacedRenewals?.waiting, 3);
    await keeper.close();
    // close() aborts work in flight, waiting included.
    assert.deepEqual(await Promise.all(waiting), ['ERR_ABORTED', 'ERR_ABORTED', 'ERR_ABORTED']);
  });
});
