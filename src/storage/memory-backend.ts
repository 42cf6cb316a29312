/**
 * The shared state behind one or more MemoryStorage instances: values, and
 * locks handed to waiters in FIFO order. Every grant of a lock gets a fencing
 * token from one counter that only grows, so a later grant always has a
 * greater token than every earlier one.
 */
import type { FencedWrite } from './types.js';

export interface Entry {
  value: Buffer;
  modified: Date;
}

export interface Waiter {
  holder: object;
  grant(): void;
}

interface LockRecord {
  holder: object | undefined;
  /** The fencing token of the current grant (0 while free). */
  token: number;
  expiresAt: number | undefined;
  waiters: Waiter[];
}

/** The shared state behind one or more MemoryStorage instances. */
export class MemoryBackend {
  readonly entries = new Map<string, Entry>();
  readonly #locks = new Map<string, LockRecord>();
  /** The last fencing token handed out, for any lock. */
  #fence = 0;

  /** Takes the lock when it is free (or expired) and nobody is queued ahead: the grant's fencing token, or undefined. */
  tryAcquire(name: string, holder: object, now: number, ttlMs: number | undefined): number | undefined {
    this.expireIfDue(name, now);
    const record = this.#record(name);
    if (record.holder !== undefined || record.waiters.length > 0) return undefined;
    return this.assign(name, holder, now, ttlMs);
  }

  enqueue(name: string, waiter: Waiter): void {
    this.#record(name).waiters.push(waiter);
  }

  dequeue(name: string, waiter: Waiter): void {
    const record = this.#locks.get(name);
    if (!record) return;
    record.waiters = record.waiters.filter((w) => w !== waiter);
    this.#forgetIfIdle(name, record);
  }

  /** Hands the lock to `holder` (also from a waiter's grant); returns the grant's fencing token. */
  assign(name: string, holder: object, now: number, ttlMs: number | undefined): number {
    const record = this.#record(name);
    record.holder = holder;
    record.token = ++this.#fence;
    record.expiresAt = ttlMs === undefined ? undefined : now + ttlMs;
    return record.token;
  }

  /** Applies all writes at once (one synchronous step), only while `holder` holds `name` under `token`. */
  writeFenced(name: string, holder: object, token: number, writes: readonly FencedWrite[], now: number): boolean {
    if (!this.isHeldBy(name, holder, now) || this.#locks.get(name)?.token !== token) return false;
    for (const write of writes) {
      if ('delete' in write) this.remove(write.key);
      else this.put(write.key, write.value, now);
    }
    return true;
  }

  put(key: string, value: Uint8Array, now: number): void {
    // Copy: the caller may reuse its buffer, and a reader must never see a later mutation.
    this.entries.set(key, { value: Buffer.from(value), modified: new Date(now) });
  }

  /** Removes `key` and everything below it. */
  remove(key: string): void {
    const below = `${key}/`;
    for (const existing of [...this.entries.keys()]) {
      if (existing === key || existing.startsWith(below)) this.entries.delete(existing);
    }
  }

  refresh(name: string, holder: object, now: number, ttlMs: number): boolean {
    const record = this.#locks.get(name);
    if (!record || record.holder !== holder) return false;
    record.expiresAt = now + ttlMs;
    return true;
  }

  release(name: string, holder: object, now: number): void {
    const record = this.#locks.get(name);
    if (!record || record.holder !== holder) return;
    record.holder = undefined;
    record.token = 0;
    record.expiresAt = undefined;
    this.#handOver(name, record);
  }

  isHeldBy(name: string, holder: object, now: number): boolean {
    this.expireIfDue(name, now);
    return this.#locks.get(name)?.holder === holder;
  }

  /** When the lock exists and expires, the epoch ms it does. */
  expiresAt(name: string): number | undefined {
    return this.#locks.get(name)?.expiresAt;
  }

  /** Drops an expired holder (it stopped refreshing: "died") and hands the lock on. */
  expireIfDue(name: string, now: number): void {
    const record = this.#locks.get(name);
    if (!record || record.holder === undefined || record.expiresAt === undefined) return;
    if (record.expiresAt > now) return;
    record.holder = undefined;
    record.token = 0;
    record.expiresAt = undefined;
    this.#handOver(name, record);
  }

  #handOver(name: string, record: LockRecord): void {
    const next = record.waiters.shift();
    if (next) {
      next.grant();
    } else {
      this.#forgetIfIdle(name, record);
    }
  }

  #record(name: string): LockRecord {
    let record = this.#locks.get(name);
    if (!record) {
      record = { holder: undefined, token: 0, expiresAt: undefined, waiters: [] };
      this.#locks.set(name, record);
    }
    return record;
  }

  #forgetIfIdle(name: string, record: LockRecord): void {
    if (record.holder === undefined && record.waiters.length === 0) this.#locks.delete(name);
  }
}
