/**
 * Pebble with the test CA in front (renewalInfo with windows the test sets,
 * revocationDrill, a ledger of `replaces`), both on a FakeClock that a pump
 * moves forward in small steps so orders (whose polls wait on the clock)
 * progress, and that a test can jump ahead (a Retry-After, hours).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { startTestCa, type TestCa } from '../../src/testing/index.js';
import { FakeClock } from '../../src/testing/fake-clock.js';
import { startPebble, type PebbleHandle } from '../helpers/pebble.js';

export interface AriHarness {
  pebble: PebbleHandle;
  ca: TestCa;
  clock: FakeClock;
  /** Moves the fake clock `ms` ahead at once, firing due timers in order (the pump holds meanwhile). */
  jump(ms: number): Promise<void>;
  /** Stops the pump: the clock moves only by jump() (protocol waits run on real time, so orders still complete). */
  hold(): Promise<void>;
  resume(): void;
  stop(): Promise<void>;
}

export async function startAriHarness({ retryAfterSeconds = 3600, stepMs = 200 } = {}): Promise<AriHarness> {
  const clock = new FakeClock(Date.now());
  const pebble = await startPebble();
  let ca: TestCa;
  try {
    ca = await startTestCa({
      pebble: { directoryUrl: pebble.directoryUrl, managementUrl: pebble.managementUrl, caCertificate: pebble.pebbleCaPem },
      clock,
      renewalInfoRetryAfterSeconds: retryAfterSeconds,
    });
  } catch (error) {
    await pebble.stop();
    throw error;
  }
  // Every move of the clock goes through one chain: the pump's steps and the test's jumps never interleave.
  let chain: Promise<void> = Promise.resolve();
  const move = (ms: number): Promise<void> => (chain = chain.then(() => clock.advance(ms)));
  let running = true;
  let held = false;
  const loop = (async () => {
    while (running) {
      if (!held) await move(stepMs);
      await sleep(5);
    }
  })();
  return {
    pebble,
    ca,
    clock,
    jump: move,
    hold: async () => {
      held = true;
      await chain;
    },
    resume: () => {
      held = false;
    },
    stop: async () => {
      running = false;
      await loop;
      await ca.close();
      await pebble.stop();
    },
  };
}

/** A local HTTP server that counts requests: the explanationURL must never be fetched. */
export async function countingServer(): Promise<{ url: string; requests: () => number; close(): Promise<void> }> {
  let count = 0;
  const server = http.createServer((_req, res) => {
    count++;
    res.end('incident');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/incident/drill`,
    requests: () => count,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
