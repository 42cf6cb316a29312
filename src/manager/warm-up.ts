/**
 * Background warm-up after a large manageSync: the names were only listed
 * (so start-up is proportional to what is served, not to what is stored);
 * here their sidecars are read a few at a time, so handshakes keep the CPU,
 * to schedule each renewal, or to obtain again what turned out unusable. A
 * step waits while a handshake's certificate is being read (parts.foreground).
 */
import { DEFAULT_WARM_UP_CONCURRENCY } from '../defaults.js';
import type { ManagedRecord } from '../renewal/managed-record.js';
import { renewSoon, type KeeperParts } from './parts.js';
import { applySidecar } from './stored-sets.js';

export class WarmUp {
  readonly #parts: KeeperParts;
  #queue: ManagedRecord[] = [];
  #head = 0;
  #workers = 0;

  constructor(parts: KeeperParts) {
    this.#parts = parts;
  }

  /** Queues a listed record; a few workers drain the queue (no promise per name). */
  add(record: ManagedRecord): void {
    this.#queue.push(record);
    while (this.#workers < Math.min(DEFAULT_WARM_UP_CONCURRENCY, this.#queue.length - this.#head)) {
      this.#workers++;
      this.#parts.track(this.#drain());
    }
  }

  async #drain(): Promise<void> {
    try {
      while (!this.#parts.closing() && this.#head < this.#queue.length) {
        // Handshakes waiting for a stored certificate go first (at most DEFAULT_WARM_UP_YIELD_MS per step).
        await this.#parts.foreground.yieldTo();
        if (this.#parts.closing() || this.#head >= this.#queue.length) break;
        const record = this.#queue[this.#head++] as ManagedRecord;
        await this.#warmUp(record);
      }
    } finally {
      this.#workers--;
      if (this.#head >= this.#queue.length) {
        this.#queue = [];
        this.#head = 0;
      }
    }
  }

  /** Reads a listed record's sidecar to schedule its renewal; obtains again when it is unusable. */
  async #warmUp(record: ManagedRecord): Promise<void> {
    const { stored, failures, scheduler, registry, pipeline } = this.#parts;
    if (!registry.isCurrent(record)) return;
    if (record.notAfter !== undefined) {
      // Adopted by a handshake (or obtained) before its turn here: its sidecar is read, but its renewal
      // may not be scheduled yet (serving a set schedules nothing). An obtain in flight schedules its own.
      if (scheduler.nextAt(record.certName) !== undefined || pipeline.has(record.certName)) return;
      await failures.restore(record, failures.listing);
      scheduler.scheduleNext(record);
      if (scheduler.isDue(record)) renewSoon(this.#parts, record);
      return;
    }
    try {
      const meta = record.issuerKey !== undefined ? await stored.readMeta(record.issuerKey, record.certName) : undefined;
      const usable = meta !== undefined && stored.usable(meta, record);
      if (usable && record.notAfter === undefined) applySidecar(record, meta);
      await failures.restore(record, failures.listing);
      if (usable) {
        scheduler.scheduleNext(record);
        if (scheduler.isDue(record)) renewSoon(this.#parts, record);
        // Its CA's renewal window counts for a listed name as for a served one (a revocation drill reaches all).
        else scheduler.refreshAriSoon(record);
        return;
      }
      if (scheduler.isDue(record)) renewSoon(this.#parts, record);
      else scheduler.scheduleNext(record);
    } catch (error) {
      if (this.#parts.closing()) return;
      await failures.note(record, error, true, this.#parts.signal);
      scheduler.scheduleNext(record);
    }
  }
}
