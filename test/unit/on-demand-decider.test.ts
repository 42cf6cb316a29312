/**
 * OnDemandDecider against a real local ask endpoint and decide() functions: the concurrency cap, the
 * answer cache (what is cached, TTL on the fake clock, bounded size) and aborts.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, test } from 'node:test';
import { OnDemandBusyError } from '../../src/errors.js';
import { OnDemandDecider, type OnDemandPolicy } from '../../src/manager/on-demand.js';
import { FakeClock } from '../../src/testing/fake-clock.js';

const base = { askTimeoutMs: 60_000, maxConcurrent: 4, cacheTtlMs: 1_000, cacheCapacity: 100 };
const never = new AbortController().signal;

function decider(policy: Partial<OnDemandPolicy>, clock = new FakeClock(0)): OnDemandDecider {
  return new OnDemandDecider({ ...base, clock, ...policy });
}

describe('OnDemandDecider', () => {
  test('allow and deny answers are reused until the TTL; decide() errors are not cached', async () => {
    const clock = new FakeClock(0);
    const seen: string[] = [];
    const d = decider({ decide: (name) => {
      seen.push(name);
      if (name.startsWith('throw')) throw new Error('backend down');
      return name.startsWith('yes');
    } }, clock);
    for (let i = 0; i < 3; i++) {
      assert.deepEqual(await d.decide('yes.example.test', never), { allowed: true });
      assert.equal((await d.decide('no.example.test', never)).allowed, false);
      assert.match((await d.decide('throw.example.test', never) as { reason: string }).reason, /decide\(\) threw: backend down/);
    }
    assert.deepEqual(seen, ['yes.example.test', 'no.example.test', 'throw.example.test', 'throw.example.test', 'throw.example.test']);
    assert.equal(d.stats.cacheHits, 4);
    await clock.advance(999);
    await d.decide('yes.example.test', never);
    assert.equal(seen.length, 5, 'still cached 1 ms before the TTL');
    await clock.advance(1);
    await d.decide('yes.example.test', never);
    assert.equal(seen.length, 6, 'asked again at the TTL');
  });

  test('the cache is bounded (oldest answer dropped first) and cacheTtlMs 0 disables it', async () => {
    let calls = 0;
    const bounded = decider({ decide: () => (calls++, true), cacheCapacity: 2 });
    for (const name of ['a.test', 'b.test', 'c.test', 'c.test', 'b.test', 'a.test']) await bounded.decide(name, never);
    assert.equal(calls, 4, 'a was dropped when c came in; b and c stayed');
    calls = 0;
    const uncached = decider({ decide: () => (calls++, true), cacheTtlMs: 0 });
    for (let i = 0; i < 3; i++) await uncached.decide('a.test', never);
    assert.equal(calls, 3);
  });

  test('beyond maxConcurrent a decision throws OnDemandBusyError at once; the slot is held until decide() settles', async () => {
    const release: Array<(v: boolean) => void> = [];
    const d = decider({ decide: () => new Promise<boolean>((resolve) => release.push(resolve)), maxConcurrent: 2 });
    const a = new AbortController();
    const first = d.decide('one.test', a.signal);
    const second = d.decide('two.test', never);
    await assert.rejects(d.decide('three.test', never), (e: unknown) => e instanceof OnDemandBusyError && e.code === 'ERR_ON_DEMAND_BUSY');
    a.abort();
    // decide() ignored its signal: it still runs, so its slot is still taken.
    await assert.rejects(d.decide('four.test', never), OnDemandBusyError);
    release[0]?.(true);
    release[1]?.(true);
    await Promise.all([first, second]);
    assert.deepEqual(d.stats, { decisions: 2, cacheHits: 0, refusedBusy: 2, inProgress: 0 });
    release.length = 0;
    const fifth = d.decide('five.test', never);
    release[0]?.(true);
    assert.deepEqual(await fifth, { allowed: true });
  });

  test('an aborted ask destroys its request at once, and the failure is not cached', async () => {
    let open = 0;
    let requests = 0;
    const server = http.createServer((req) => {
      requests++;
      open++;
      req.socket.on('close', () => open--);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/ask`;
    try {
      const d = decider({ askUrl: url });
      const controller = new AbortController();
      const pending = d.decide('hang.example.test', controller.signal);
      while (open === 0) await new Promise((r) => setTimeout(r, 5));
      controller.abort();
      const decision = await pending;
      assert.equal(decision.allowed, false);
      assert.match((decision as { reason: string }).reason, /went away/);
      while (open > 0) await new Promise((r) => setTimeout(r, 5));
      assert.equal(d.stats.inProgress, 0);
      // Not cached: asked again.
      const again = new AbortController();
      const second = d.decide('hang.example.test', again.signal);
      while (requests < 2) await new Promise((r) => setTimeout(r, 5));
      again.abort();
      await second;
      assert.equal(requests, 2);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
