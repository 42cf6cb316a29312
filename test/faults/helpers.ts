/**
 * Shared pieces of the manager and fault-injection tests: a storage wrapper
 * that counts (or fails) writes, keeper options for Pebble, and small waits.
 */
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { CertKeeperOptions } from '../../src/config/index.js';
import type { CertKeeperEvents } from '../../src/events.js';
import type { CertKeeper } from '../../src/manager/keeper.js';
import type { FencedWrite, FencedWriter, Storage } from '../../src/storage/types.js';
import type { PebbleHandle } from '../helpers/pebble.js';
import { silentLogger } from '../helpers/logging.js';

export interface CountingStorage {
  storage: Storage;
  /** Keys passed to store(), in order. */
  stores: string[];
  /** When set, store() calls for which it returns an error reject with it (nothing is written). */
  failStore: ((key: string) => Error | undefined) | undefined;
  /** When set, awaited after each successful store() (to act at a precise point of an order). */
  afterStore: ((key: string) => Promise<void>) | undefined;
}

/** Wraps a storage: every store() is recorded, and may be made to fail. Everything else passes through. */
export function countingStorage(inner: Storage): CountingStorage {
  const handle: CountingStorage = { storage: inner, stores: [], failStore: undefined, afterStore: undefined };
  handle.storage = new Proxy(inner, {
    get(target, property, receiver) {
      if (property === 'store') {
        return async (key: string, value: Uint8Array) => {
          handle.stores.push(key);
          const error = handle.failStore?.(key);
          if (error) throw error;
          await target.store(key, value);
          await handle.afterStore?.(key);
        };
      }
      // A write under a lock (a certificate set, at once) counts and fails the same way, for each value it stores.
      if (property === 'writeFenced' && typeof (target as Partial<FencedWriter>).writeFenced === 'function') {
        return async (lock: string, writes: readonly FencedWrite[]) => {
          const stored = writes.filter((w) => !('delete' in w)).map((w) => w.key);
          handle.stores.push(...stored);
          for (const key of stored) {
            const error = handle.failStore?.(key);
            if (error) throw error;
          }
          await (target as Storage & FencedWriter).writeFenced(lock, writes);
          for (const key of stored) await handle.afterStore?.(key);
        };
      }
      const value = Reflect.get(target, property, receiver) as unknown;
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
  return handle;
}

/** Keeper options for a Pebble started by the test (HTTP-01 on Pebble's port, no TLS-ALPN-01). */
export function pebbleOptions(pebble: PebbleHandle, storage: Storage, extra: Partial<CertKeeperOptions> = {}): CertKeeperOptions {
  return {
    ca: pebble.directoryUrl,
    caCertificates: pebble.pebbleCaPem,
    agreeToTerms: true,
    email: 'admin@example.test',
    storage,
    challenges: { http01: { port: pebble.httpPort, host: '127.0.0.1' }, tlsAlpn01: false },
    logger: silentLogger(),
    ...extra,
  };
}

export function listen(server: https.Server | import('node:http').Server | import('node:tls').Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

export function closeServer(server: { close(cb?: (err?: Error) => void): unknown; closeAllConnections?: () => void }): Promise<void> {
  server.closeAllConnections?.();
  return new Promise((resolve) => server.close(() => resolve()));
}

export function nextEvent<E extends keyof CertKeeperEvents>(keeper: CertKeeper, event: E, filter: (payload: CertKeeperEvents[E]) => boolean = () => true): Promise<CertKeeperEvents[E]> {
  return new Promise((resolve) => {
    const off = keeper.on(event, (payload) => {
      if (!filter(payload)) return;
      off();
      resolve(payload);
    });
  });
}

/** Polls `check` every few milliseconds until it is true (for state reached by background work); fails after `timeoutMs`. */
export async function waitUntil(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Lets pending promise callbacks and immediate I/O run. */
export function settle(ms = 50): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Rejects when `promise` has not settled after `ms` (a generous bound: it only proves that something never came). */
export async function within<T>(promise: Promise<T>, what: string, ms = 20_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
