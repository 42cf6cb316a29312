import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AcmeConnection } from '../../src/acme/connection.js';
import { poll } from '../../src/acme/order.js';
import type { RawResponse } from '../../src/acme/problem.js';
import { FakeClock } from '../../src/testing/fake-clock.js';

/** A connection stub answering POST-as-GET from a script of responses, recording when each came. */
function scripted(clock: FakeClock, responses: RawResponse[]) {
  const times: number[] = [];
  const start = clock.now();
  const conn = {
    async post(): Promise<RawResponse> {
      times.push(clock.now() - start);
      const next = responses.shift();
      if (!next) throw new Error('script exhausted');
      return next;
    },
  } as unknown as AcmeConnection;
  return { conn, times };
}

const status = (s: string, headers: Record<string, unknown> = {}): RawResponse => ({ status: 200, data: { status: s }, headers });

async function settle<T>(clock: FakeClock, promise: Promise<T>): Promise<T> {
  let done = false;
  promise.then(() => { done = true; }, () => { done = true; });
  await clock.advance(0); // let the first answer be handled at the start time
  for (let i = 0; i < 200 && !done; i++) await clock.advance(50);
  return promise;
}

describe('status polling', () => {
  it('starts at the poll interval and backs off up to the maximum', async () => {
    const clock = new FakeClock();
    const { conn, times } = scripted(clock, [status('pending'), status('pending'), status('pending'), status('pending'), status('valid')]);
    const result = await settle(clock, poll({ conn, clock, pollIntervalMs: 250, maxPollIntervalMs: 500 }, 'https://ca.test/authz/1', 'authorization', (s) => s !== 'pending', new AbortController().signal));
    assert.equal(result.status, 'valid');
    assert.deepEqual(times, [0, 250, 625, 1125, 1625]);
  });

  it('waits at least the Retry-After the CA asks for (seconds or HTTP date)', async () => {
    const clock = new FakeClock();
    // An HTTP date is absolute: asked for at t=3000, it means "wait until t=7000".
    const later = new Date(clock.now() + 7000).toUTCString();
    const { conn, times } = scripted(clock, [status('processing', { 'retry-after': '3' }), status('processing', { 'retry-after': later }), status('valid')]);
    await settle(clock, poll({ conn, clock, pollIntervalMs: 250, maxPollIntervalMs: 5000 }, 'https://ca.test/order/1', 'order', (s) => s === 'valid', new AbortController().signal));
    assert.deepEqual(times, [0, 3000, 7000]);
  });

  it('stops when its signal fires', async () => {
    const clock = new FakeClock();
    const controller = new AbortController();
    const { conn } = scripted(clock, Array.from({ length: 50 }, () => status('pending')));
    const promise = poll({ conn, clock, pollIntervalMs: 250, maxPollIntervalMs: 250 }, 'https://ca.test/authz/1', 'authorization', (s) => s !== 'pending', controller.signal);
    promise.catch(() => undefined);
    await clock.advance(600);
    controller.abort();
    await assert.rejects(promise, (e: unknown) => (e as { code?: string }).code === 'ERR_ABORTED');
  });
});
