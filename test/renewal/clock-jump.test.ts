import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import type tls from 'node:tls';
import { describe, test } from 'node:test';
import type { CertKeeperEvents, EventName } from '../../src/events.js';
import { CertKeeper } from '../../src/manager/keeper.js';
import { ClockJumpDetector, type ClockJump } from '../../src/renewal/clock-jump.js';
import { DueQueue } from '../../src/renewal/due-queue.js';
import { certificateKeys, internalCaKeys } from '../../src/storage/layout.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import { FakeClock } from '../../src/testing/fake-clock.js';
import { buildMaterial } from '../../src/tls/certificate-material.js';
import { ContextCache } from '../../src/tls/context-cache.js';
import type { InvalidServedCertificate } from '../../src/tls/context-cache-options.js';
import { selfSignedCertificate } from '../helpers/certs.js';
import { silentLogger } from '../helpers/logging.js';
import { until } from '../helpers/eventually.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

function collect<E extends EventName>(keeper: CertKeeper, event: E): CertKeeperEvents[E][] {
  const seen: CertKeeperEvents[E][] = [];
  keeper.on(event, (payload) => seen.push(payload));
  return seen;
}

/** A handshake as node's TLS server makes it: through SNICallback, with the servername the client sent. */
function sni(options: tls.TlsOptions, name: string): Promise<tls.SecureContext | undefined> {
  return new Promise((resolve, reject) => {
    (options.SNICallback as (n: string, cb: (e: Error | null, c?: tls.SecureContext) => void) => void)(name, (error, context) => (error ? reject(error) : resolve(context)));
  });
}

function keeperOptions(clock: FakeClock, storage = new MemoryStorage(), extra: Record<string, unknown> = {}) {
  return {
    storage,
    clock,
    issuers: [{ type: 'internal' as const, leafLifetimeMs: DAY, intermediateLifetimeMs: 2 * DAY }],
    renewalPacing: false as const,
    logger: silentLogger(),
    ...extra,
  };
}

describe('ClockJumpDetector', () => {
  test('a wall-clock jump not matched by monotonic time is reported once, on the next tick, with its size and direction', async () => {
    const clock = new FakeClock(Date.UTC(2026, 5, 1), { monotonic: true });
    const jumps: ClockJump[] = [];
    const detector = ClockJumpDetector.create({ clock, thresholdMs: 5_000, checkIntervalMs: 1_000, onJump: (j) => jumps.push(j) });
    assert.ok(detector);
    try {
      await clock.advance(10_000);
      assert.equal(jumps.length, 0, 'time passing on both clocks is no jump');
      clock.jump(3 * DAY);
      assert.equal(jumps.length, 0, 'nothing is noticed before a look');
      await clock.advance(1_000);
      assert.equal(jumps.length, 1);
      assert.equal(jumps[0]?.deltaMs, 3 * DAY);
      assert.equal(jumps[0]?.to.getTime(), clock.now());
      await clock.advance(5_000);
      assert.equal(jumps.length, 1, 'reported once');

      clock.jump(-HOUR);
      await clock.advance(1_000);
      assert.equal(jumps.length, 2);
      assert.equal(jumps[1]?.deltaMs, -HOUR, 'a backwards jump is negative');

      clock.jump(4_000);
      await clock.advance(1_000);
      assert.equal(jumps.length, 2, 'below the threshold: no jump');
    } finally {
      await detector.close();
    }
    assert.equal(clock.pendingTimers, 0, 'close() cancels the tick');
  });

  test('a watched timer looks for a jump when it fires', async () => {
    const clock = new FakeClock(Date.UTC(2026, 5, 1), { monotonic: true });
    const jumps: ClockJump[] = [];
    const detector = ClockJumpDetector.create({ clock, thresholdMs: 5_000, checkIntervalMs: 3_600_000, onJump: (j) => jumps.push(j) });
    assert.ok(detector);
    let fired = 0;
    detector.watched().setTimer(() => fired++, 500);
    clock.jump(DAY);
    await clock.advance(500);
    await detector.close();
    assert.equal(fired, 1);
    assert.equal(jumps.length, 1, 'noticed by the timer, long before the hourly tick');
  });

  test('a clock without monotonic() gets no detector', () => {
    assert.equal(ClockJumpDetector.create({ clock: new FakeClock(), thresholdMs: 1, checkIntervalMs: 1, onJump: () => {} }), undefined);
  });

  test('FakeClock.jump keeps pending timers on their monotonic schedule', async () => {
    const clock = new FakeClock(0, { monotonic: true });
    const queue = new DueQueue<string>({ clock, onDue: (k) => fired.push(k) });
    const fired: string[] = [];
    queue.schedule('soon', 10_000);
    queue.schedule('later', 2 * DAY);
    clock.jump(DAY);
    assert.equal(clock.monotonic?.(), 0);
    await clock.advance(9_999);
    assert.deepEqual(fired, [], 'the old timer still waits its 10 s of monotonic time');
    queue.rearm();
    await clock.advance(1);
    assert.deepEqual(fired, ['soon'], 'rearmed from the new wall time, the past due time fires at once');
    await queue.close();
  });
});

describe('context cache: validity checked on each handshake', () => {
  test('an expired managed certificate is still served, and reported once per interval after the handshake', async () => {
    const clock = new FakeClock(Date.now());
    const reports: InvalidServedCertificate[] = [];
    const cache = new ContextCache({ clock, onInvalid: (invalid) => reports.push(invalid) });
    const managed = await selfSignedCertificate(['m.example.test'], 2);
    const unmanaged = await selfSignedCertificate(['u.example.test'], 2);
    cache.add(buildMaterial(managed.certPem, managed.keyPem, { managed: true }));
    cache.add(buildMaterial(unmanaged.certPem, unmanaged.keyPem));
    try {
      assert.ok(cache.getCached('m.example.test'));
      await Promise.resolve();
      assert.equal(reports.length, 0, 'valid: no report');
      clock.jump(3 * DAY);
      const context = cache.getCached('m.example.test');
      assert.ok(context, 'the expired certificate is still served (better than none)');
      assert.equal(reports.length, 0, 'the report is not made inside the handshake');
      await Promise.resolve();
      assert.equal(reports.length, 1);
      assert.equal(reports[0]?.reason, 'expired');
      for (let i = 0; i < 50; i++) cache.getCached('m.example.test');
      assert.ok(cache.find('U.example.test'));
      await Promise.resolve();
      assert.equal(reports.length, 1, 'once per certificate per interval; unmanaged certificates are not reported');
      await clock.advance(61_000);
      cache.getCached('m.example.test');
      await Promise.resolve();
      assert.equal(reports.length, 2, 'reported again after the interval');
      clock.jump(-10 * DAY);
      await clock.advance(61_000);
      cache.getCached('m.example.test');
      await Promise.resolve();
      assert.equal(reports[2]?.reason, 'not_yet_valid');
    } finally {
      await cache.close();
    }
  });
});

describe('keeper after a clock jump (fake clock, internal CA)', () => {
  test('+3 days: the jump is noticed within a tick, every due time is replanned, the name is renewed once', async () => {
    const clock = new FakeClock(Date.now(), { monotonic: true });
    const storage = new MemoryStorage();
    const keeper = new CertKeeper(keeperOptions(clock, storage));
    const jumps = collect(keeper, 'clock_jump');
    const obtaining = collect(keeper, 'cert_obtaining');
    const renewed = collect(keeper, 'cert_renewed');
    try {
      const names = ['a.example.test', 'b.example.test', 'c.example.test'];
      await keeper.manageSync(names);
      const before = new Map(names.map((n) => [n, keeper.status(n).serialNumber]));
      obtaining.length = 0;
      const dueBefore = keeper.status('a.example.test').nextRenewalAt?.getTime() as number;

      clock.jump(3 * DAY);
      await clock.advance(1_000);
      assert.equal(jumps.length, 1);
      assert.equal(jumps[0]?.deltaMs, 3 * DAY);
      await until(() => renewed.length === names.length, 'all three renewed');
      assert.equal(obtaining.length, names.length, 'one order per name');
      for (const name of names) {
        const status = keeper.status(name);
        assert.notEqual(status.serialNumber, before.get(name));
        assert.ok((status.notAfter as Date).getTime() > clock.now(), 'valid now');
      }
      assert.ok(clock.monotonic && dueBefore > clock.now() - 3 * DAY, 'without the replan, the old timer had hours to go');

      // The internal CA's intermediate (2 days) had expired too: the new leaves chain to a new, valid one.
      const intermediate = new X509Certificate((await storage.load(internalCaKeys('local').intermediateCert)).toString());
      assert.ok(Date.parse(intermediate.validTo) > clock.now() && Date.parse(intermediate.validFrom) <= clock.now(), 'intermediate renewed after the jump');
      const issuerKey = keeper.status('a.example.test').issuer as string;
      const chain = (await storage.load(certificateKeys(issuerKey, 'a.example.test').cert)).toString();
      const leaf = new X509Certificate(chain);
      assert.ok(leaf.checkIssued(intermediate) && leaf.verify(intermediate.publicKey), 'the new leaf is signed by the new intermediate');
    } finally {
      await keeper.close();
    }
    assert.equal(clock.pendingTimers, 0, 'close() released the tick and the queues');
  });

  test('with detection off, a handshake finding its certificate expired renews at once, once, and keeps serving meanwhile', async () => {
    const clock = new FakeClock(Date.now(), { monotonic: true });
    const keeper = new CertKeeper(keeperOptions(clock, new MemoryStorage(), { clockJump: false }));
    const invalid = collect(keeper, 'cert_served_invalid');
    const obtaining = collect(keeper, 'cert_obtaining');
    const renewed = collect(keeper, 'cert_renewed');
    try {
      const name = 'expired.example.test';
      await keeper.manageSync([name]);
      const first = keeper.status(name).serialNumber;
      obtaining.length = 0;
      const options = keeper.tlsOptions();
      clock.jump(3 * DAY);
      await clock.advance(1_000);
      assert.equal(renewed.length, 0, 'no detector: nothing noticed the jump yet');
      const served = await Promise.all(Array.from({ length: 20 }, () => sni(options, name)));
      assert.ok(served.every((c) => c !== undefined), 'every handshake got a certificate');
      await until(() => renewed.length === 1, 'renewed');
      assert.equal(obtaining.length, 1, 'twenty handshakes, one order');
      assert.equal(invalid.length, 1, 'said once');
      assert.equal(invalid[0]?.reason, 'expired');
      assert.equal(invalid[0]?.action, 'renewing');
      assert.notEqual(keeper.status(name).serialNumber, first);
      await sni(options, name);
      await new Promise((r) => setImmediate(r));
      assert.equal(invalid.length, 1, 'the new certificate is valid: nothing more to say');
    } finally {
      await keeper.close();
    }
  });

  test('a handshake finding its certificate expired serves a valid one a peer stored, without ordering', async () => {
    const clock = new FakeClock(Date.now(), { monotonic: true });
    const storage = new MemoryStorage();
    const name = 'peer.example.test';
    const a = new CertKeeper(keeperOptions(clock, storage, { clockJump: false }));
    const b = new CertKeeper(keeperOptions(clock, storage, { clockJump: false }));
    const invalid = collect(a, 'cert_served_invalid');
    const obtainingA = collect(a, 'cert_obtaining');
    try {
      await a.manageSync([name]);
      clock.jump(3 * DAY);
      // The peer (woken earlier) renewed and stored a new certificate.
      await b.obtain(name);
      const options = a.tlsOptions();
      await sni(options, name);
      await until(() => invalid.length === 1, 'reported');
      assert.equal(invalid[0]?.action, 'adopted');
      assert.equal(obtainingA.length, 1, 'only the first obtain; the stored certificate was adopted');
      const status = a.status(name);
      assert.ok((status.notAfter as Date).getTime() > clock.now(), 'a valid certificate is served now');
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });
});

describe('keeper after the clock went back (fake clock, internal CA)', () => {
  test('a stored certificate that looks not yet valid is renewed once; one this process obtained is left alone', async () => {
    const clock = new FakeClock(Date.now(), { monotonic: true });
    const storage = new MemoryStorage();
    const name = 'early.example.test';
    const first = new CertKeeper(keeperOptions(clock, storage));
    await first.manageSync([name]);
    await first.close();

    const keeper = new CertKeeper(keeperOptions(clock, storage));
    const invalid = collect(keeper, 'cert_served_invalid');
    const renewed = collect(keeper, 'cert_renewed');
    const jumps = collect(keeper, 'clock_jump');
    try {
      await keeper.manageSync([name]);
      const loaded = keeper.status(name).serialNumber;
      const options = keeper.tlsOptions();
      clock.jump(-2 * DAY);
      await clock.advance(1_000);
      assert.equal(jumps[0]?.deltaMs, -2 * DAY);
      assert.equal(renewed.length, 0, 'going back makes nothing due');
      await sni(options, name);
      await until(() => renewed.length === 1, 'renewed');
      assert.equal(invalid[0]?.reason, 'not_yet_valid');
      assert.equal(invalid[0]?.action, 'renewing');
      assert.notEqual(keeper.status(name).serialNumber, loaded);
      assert.ok((keeper.status(name).notBefore as Date).getTime() <= clock.now(), 'the internal CA dates the new one by the same clock');

      // A certificate this process obtained that looks early: the CA's next one would too, so nothing is ordered.
      clock.jump(-2 * DAY);
      await clock.advance(61_000);
      await sni(options, name);
      await until(() => invalid.length === 2, 'reported');
      assert.equal(invalid[1]?.action, 'none');
      await new Promise((r) => setImmediate(r));
      assert.equal(renewed.length, 1, 'no second renewal');
    } finally {
      await keeper.close();
    }
  });
});

describe('clockJump option', () => {
  test('defaults, false, and invalid values', async () => {
    const { resolveConfig } = await import('../../src/config/resolve.js');
    const { DEFAULT_CLOCK_JUMP_CHECK_INTERVAL_MS, DEFAULT_CLOCK_JUMP_THRESHOLD_MS } = await import('../../src/defaults.js');
    assert.deepEqual(resolveConfig({}).clockJump, { thresholdMs: DEFAULT_CLOCK_JUMP_THRESHOLD_MS, checkIntervalMs: DEFAULT_CLOCK_JUMP_CHECK_INTERVAL_MS });
    assert.deepEqual(resolveConfig({ clockJump: { thresholdMs: 60_000 } }).clockJump, { thresholdMs: 60_000, checkIntervalMs: DEFAULT_CLOCK_JUMP_CHECK_INTERVAL_MS });
    assert.equal(resolveConfig({ clockJump: false }).clockJump, false);
    assert.throws(() => resolveConfig({ clockJump: { checkIntervalMs: -1 } }), { code: 'ERR_INVALID_OPTION' });
    assert.throws(() => resolveConfig({ clockJump: 'yes' as never }), { code: 'ERR_INVALID_OPTION' });
  });
});

describe('a certificate loaded on its handshake after a sleep', () => {
  test('an expired stored set is served meanwhile and renewed at once, not answered with no certificate', async () => {
    const clock = new FakeClock(Date.now(), { monotonic: true });
    const keeper = new CertKeeper(keeperOptions(clock, new MemoryStorage(), { clockJump: false, cacheCapacity: 1 }));
    const renewed = collect(keeper, 'cert_renewed');
    const invalid = collect(keeper, 'cert_served_invalid');
    const evicted = collect(keeper, 'cert_evicted');
    try {
      await keeper.manageSync(['one.example.test']);
      await keeper.manageSync(['two.example.test']);
      const out = evicted[0]?.names[0] as string;
      assert.ok(out, 'one certificate was evicted (capacity 1)');
      clock.jump(3 * DAY);
      const context = await sni(keeper.tlsOptions(), out);
      assert.ok(context, 'the expired stored certificate answers the handshake');
      await until(() => renewed.some((r) => r.names.includes(out)), 'renewed');
      assert.equal(invalid.find((i) => i.names.includes(out))?.action, 'renewing');
      assert.ok((keeper.status(out).notAfter as Date).getTime() > clock.now());
    } finally {
      await keeper.close();
    }
  });
});
