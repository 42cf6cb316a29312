/**
 * Renewals yield to traffic (RenewalPacer, CpuOffload): renewals of served certificates are rate-limited while the
 * machine is busy and made on the worker thread; obtaining a missing certificate is never held back.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { CertKeeper } from '../../src/manager.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import { silentLogger } from '../helpers/logging.js';

const base = { challenges: { http01: false as const, tlsAlpn01: { listener: false } }, logger: silentLogger(), issuers: [{ type: 'internal' as const }] };
const names = ['p1.example.test', 'p2.example.test', 'p3.example.test', 'p4.example.test'];

/** Start times of obtains, from cert_obtaining (emitted under the lock, after pacing). */
function obtainingTimes(keeper: CertKeeper, renewal: boolean): number[] {
  const times: number[] = [];
  keeper.on('cert_obtaining', (e) => {
    if (e.renewal === renewal) times.push(performance.now());
  });
  return times;
}

const gaps = (times: number[]): number[] => times.slice(1).map((t, i) => t - (times[i] as number));

describe('renewal pacing', () => {
  test('while busy, renewals of served certificates start at the busy rate; first obtains do not wait', async () => {
    // No machine has a million idle CPUs: the pacer always sees a busy machine.
    const keeper = new CertKeeper({ ...base, storage: new MemoryStorage(), renewalPacing: { minIdleCpus: 1_000_000, renewalsPerSecondWhenBusy: 4 } });
    try {
      const firsts = obtainingTimes(keeper, false);
      const t0 = performance.now();
      await keeper.manageSync(names);
      assert.equal(firsts.length, 4);
      assert.ok(performance.now() - t0 < 2000, 'first obtains are not paced');
      assert.equal(keeper.orderStats().pacedRenewals?.admitted, 0);

      const renewals = obtainingTimes(keeper, true);
      const serials = names.map((n) => keeper.status(n).serialNumber);
      await Promise.all(names.map((n) => keeper.renew(n, { force: true })));
      assert.deepEqual(
        names.map((n, i) => keeper.status(n).serialNumber !== serials[i]),
        [true, true, true, true],
        'every certificate was renewed',
      );
      // 4 a second: 250 ms apart, measured on 100 ms windows.
      for (const gap of gaps(renewals)) assert.ok(gap >= 240, `renewals started ${gap.toFixed(0)} ms apart: ${gaps(renewals).map((g) => g.toFixed(0))}`);
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
      const renewals = obtainingTimes(keeper, true);
      await Promise.all(names.map((n) => keeper.renew(n, { force: true })));
      assert.equal(renewals.length, 4);
      assert.ok((renewals.at(-1) as number) - (renewals[0] as number) < 200, `renewals spread over ${gaps(renewals)}`);
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
