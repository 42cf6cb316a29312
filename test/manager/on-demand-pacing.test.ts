/**
 * On-demand order pacing, end to end (real TLS listener, real ClientHellos, the internal issuer): the
 * on-demand bucket bounds the orders the ISSUER receives per interval, not the handshakes admitted. A token
 * is claimed when a handshake is admitted and taken right before the issuer is asked; while admitted orders
 * cannot start (here: the storage lock is held, as a starved process or a busy pipeline would), refills do
 * not admit more, so they cannot start later in a bunch. A handshake beyond the rate is refused at the first
 * look, before any storage I/O. Time is a fake clock's: counts per fake-clock window, no wall-time assertion.
 */
import assert from 'node:assert/strict';
import tls from 'node:tls';
import { describe, test } from 'node:test';
import type { OnDemandDeniedEvent } from '../../src/events.js';
import { InternalIssuer } from '../../src/issuers/internal.js';
import type { IssueRequest, IssuedCertificate, Issuer } from '../../src/issuers/types.js';
import type { CertKeeperOptions } from '../../src/config/options.js';
import { CertKeeper } from '../../src/manager/keeper.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import type { Storage } from '../../src/storage/types.js';
import { FakeClock } from '../../src/testing/fake-clock.js';
import { silentLogger } from '../helpers/logging.js';
import { closeServer, listen, waitUntil } from '../faults/helpers.js';
import { sendClientHello } from '../faults/raw-client-hello.js';

/** The internal issuer behind a recorder of when (fake clock) each order reached it. */
class RecordingIssuer implements Issuer {
  readonly key: string;
  readonly #inner: InternalIssuer;
  readonly received: number[] = [];
  constructor(storage: Storage, readonly clock: FakeClock) {
    this.#inner = new InternalIssuer({ storage, logger: silentLogger() });
    this.key = this.#inner.key;
  }
  issue(request: IssueRequest): Promise<IssuedCertificate> {
    this.received.push(this.clock.now());
    return this.#inner.issue(request);
  }
}

/** Memory storage that counts every call, and whose lock() waits while `hold` is set (orders admitted, not started). */
function gatedStorage(): { storage: Storage; calls: () => number; hold(): void; release(): void; lockWaiters: () => number } {
  const inner = new MemoryStorage();
  let calls = 0;
  let gate: { promise: Promise<void>; open: () => void } | undefined;
  let waiters = 0;
  const storage = new Proxy(inner, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver) as unknown;
      if (typeof value !== 'function') return value;
      const fn = (value as (...args: unknown[]) => unknown).bind(target);
      return async (...args: unknown[]) => {
        calls++;
        if (property === 'lock' && gate) {
          waiters++;
          await gate.promise;
          waiters--;
        }
        return fn(...args);
      };
    },
  });
  return {
    storage,
    calls: () => calls,
    lockWaiters: () => waiters,
    hold: () => {
      let open!: () => void;
      const promise = new Promise<void>((resolve) => (open = resolve));
      gate = { promise, open };
    },
    release: () => {
      gate?.open();
      gate = undefined;
    },
  };
}

function maxIn(times: readonly number[], windowMs: number): number {
  const sorted = [...times].sort((a, b) => a - b);
  let best = 0;
  for (let i = 0, j = 0; i < sorted.length; i++) {
    while ((sorted[i] as number) - (sorted[j] as number) >= windowMs) j++;
    best = Math.max(best, i - j + 1);
  }
  return best;
}

const hello = (port: number, name: string): Promise<'alert' | 'handshake' | 'closed'> => sendClientHello(port, Buffer.from(name));

describe('on-demand pacing: the bucket bounds order starts', () => {
  test('orders held before they start do not let refills admit more; released, they stay within the bucket per fake second', { timeout: 120_000 }, async () => {
    const clock = new FakeClock(Date.now());
    const gated = gatedStorage();
    const issuer = new RecordingIssuer(gated.storage, clock);
    const capacity = 3;
    const refillAmount = 2;
    const keeper = new CertKeeper({
      storage: gated.storage,
      issuers: [issuer],
      challenges: { http01: false, tlsAlpn01: { listener: false } },
      onDemand: { decide: () => true, rateLimit: { capacity, refillAmount, refillIntervalMs: 1000 }, timeoutMs: 3_600_000 },
      logger: silentLogger(),
      clock,
    });
    const denials: OnDemandDeniedEvent[] = [];
    keeper.on('on_demand_denied', (event) => denials.push(event));
    const server = tls.createServer(keeper.tlsOptions());
    const port = await listen(server);
    try {
      gated.hold();
      const admitted = ['a0', 'a1', 'a2'].map((n) => hello(port, `${n}.pace.test`));
      await waitUntil(() => gated.lockWaiters() === capacity, 'the burst admitted and waiting for the lock');

      // Beyond the burst: refused at the first look, before any storage call.
      const callsBefore = gated.calls();
      const refused = await Promise.all(['b0', 'b1', 'b2', 'b3', 'b4'].map((n) => hello(port, `${n}.pace.test`)));
      assert.ok(refused.every((a) => a !== 'handshake'), refused.join(', '));
      assert.equal(gated.calls(), callsBefore, 'no storage I/O for a refused handshake');
      assert.equal(denials.length, 5);
      assert.ok(denials.every((d) => d.rateLimited === true && d.reason === 'on-demand rate limit reached'));

      // Five refill intervals pass while the admitted orders cannot start: their tokens are still claimed, so
      // nothing more is admitted (taken at admission, 3 more would be, and would start with them in one bunch).
      await clock.advance(5000);
      const stillRefused = await Promise.all(['c0', 'c1', 'c2'].map((n) => hello(port, `${n}.pace.test`)));
      assert.ok(stillRefused.every((a) => a !== 'handshake'), stillRefused.join(', '));
      assert.equal(issuer.received.length, 0, 'no order has reached the issuer yet');

      gated.release();
      assert.deepEqual(await Promise.all(admitted), ['handshake', 'handshake', 'handshake']);

      // Then 4 new names every fake second for 10 s: the refills admit 2 of them each second.
      const served: number[] = [];
      for (let second = 1; second <= 10; second++) {
        await clock.advance(1000);
        const answers = await Promise.all([0, 1, 2, 3].map((i) => hello(port, `d${second}-${i}.pace.test`)));
        served.push(answers.filter((a) => a === 'handshake').length);
      }
      assert.deepEqual(served, Array(10).fill(refillAmount), 'each second admits what the bucket refilled');
      assert.equal(issuer.received.length, capacity + 10 * refillAmount);
      assert.ok(maxIn(issuer.received, 1000) <= capacity + refillAmount, `orders received in one fake second: ${maxIn(issuer.received, 1000)}`);
      assert.ok(maxIn(issuer.received, 10_000) <= capacity + 10 * refillAmount);
      assert.ok(denials.length >= 8 + 20);
    } finally {
      gated.release();
      await closeServer(server);
      await keeper.close();
    }
  });

  test('a name that needs no order (stored by an earlier run) gives its claimed token back', { timeout: 60_000 }, async () => {
    const clock = new FakeClock(Date.now());
    const gated = gatedStorage();
    const issuer = new RecordingIssuer(gated.storage, clock);
    const options: CertKeeperOptions = {
      storage: gated.storage,
      issuers: [issuer],
      challenges: { http01: false, tlsAlpn01: { listener: false } },
      onDemand: { decide: () => true, rateLimit: { capacity: 1, refillAmount: 1, refillIntervalMs: 3_600_000 } },
      logger: silentLogger(),
      clock,
    };
    const first = new CertKeeper(options);
    let server = tls.createServer(first.tlsOptions());
    let port = await listen(server);
    assert.equal(await hello(port, 'kept.pace.test'), 'handshake');
    await closeServer(server);
    await first.close();

    // A new process (a fresh, full bucket of one): the stored name is served without spending the token.
    const second = new CertKeeper(options);
    server = tls.createServer(second.tlsOptions());
    port = await listen(server);
    try {
      assert.equal(await hello(port, 'kept.pace.test'), 'handshake');
      assert.equal(issuer.received.length, 1, 'no second order');
      assert.equal(await hello(port, 'new.pace.test'), 'handshake', 'the token was given back: a new name still gets its order');
      assert.equal(issuer.received.length, 2);
    } finally {
      await closeServer(server);
      await second.close();
    }
  });
  test('at most maxConcurrentOrders admitted orders wait to start: the next handshake fails at once, with tokens still free', { timeout: 60_000 }, async () => {
    const clock = new FakeClock(Date.now());
    const gated = gatedStorage();
    const issuer = new RecordingIssuer(gated.storage, clock);
    const keeper = new CertKeeper({
      storage: gated.storage,
      issuers: [issuer],
      challenges: { http01: false, tlsAlpn01: { listener: false } },
      onDemand: { decide: () => true, rateLimit: { capacity: 10, refillAmount: 1, refillIntervalMs: 3_600_000 }, timeoutMs: 3_600_000 },
      maxConcurrentOrders: 2,
      logger: silentLogger(),
      clock,
    });
    const denials: OnDemandDeniedEvent[] = [];
    keeper.on('on_demand_denied', (event) => denials.push(event));
    const server = tls.createServer(keeper.tlsOptions());
    const port = await listen(server);
    try {
      gated.hold();
      const admitted = ['q0', 'q1'].map((n) => hello(port, `${n}.pace.test`));
      await waitUntil(() => gated.lockWaiters() === 2, 'two admitted orders waiting for the lock');
      assert.notEqual(await hello(port, 'q2.pace.test'), 'handshake');
      assert.deepEqual(denials.map((d) => [d.name, d.reason, d.rateLimited]), [['q2.pace.test', 'too many on-demand orders waiting to start', true]]);
      gated.release();
      assert.deepEqual(await Promise.all(admitted), ['handshake', 'handshake']);
      assert.equal(await hello(port, 'q3.pace.test'), 'handshake', 'a slot is free again once they started');
      assert.equal(issuer.received.length, 3);
    } finally {
      gated.release();
      await closeServer(server);
      await keeper.close();
    }
  });
});
