import { MAX_TIMER_DELAY_MS, systemClock, type Clock, type TimerHandle } from '../clock.js';
import { ClosedError, InvalidOptionError } from '../errors.js';
import { Closable } from '../lifecycle.js';

interface Entry<K> {
  key: K;
  dueAt: number;
  /** Insertion order: equal due times fire first-scheduled first. */
  seq: number;
  /** Position in the heap array, kept up to date so reschedule/unschedule are O(log n). */
  index: number;
}

export interface DueQueueOptions<K> {
  /** Called once for each key whose due time has come; the key is no longer scheduled when it runs. */
  onDue: (key: K) => void;
  clock?: Clock | undefined;
  /** Receives an exception thrown by `onDue`; without it the exception is rethrown after the tick. */
  onError?: ((error: unknown, key: K) => void) | undefined;
}

export interface DueQueueStats {
  /** Timer callbacks run so far (including early wake-ups of a clamped timer). */
  readonly ticks: number;
  /** Heap entries looked at by the most recent tick: 1 when nothing was due, fired + 1 otherwise. */
  readonly lastTickExamined: number;
  /** Heap entries looked at by all ticks together. */
  readonly totalExamined: number;
  /** onDue calls so far. */
  readonly fired: number;
}

/**
 * Keys ordered by due time (epoch ms) in a binary min-heap, with a single
 * timer armed for the earliest one. A tick looks at the top of the heap only,
 * so its cost does not grow with the number of scheduled keys (certmagic scans
 * every certificate every 10 minutes instead).
 *
 * Timer delays are clamped to 2^31-1 ms (setTimeout's limit); a clamped timer
 * that wakes before anything is due just re-arms.
 */
export class DueQueue<K> extends Closable {
  readonly #clock: Clock;
  readonly #onDue: (key: K) => void;
  readonly #onError: ((error: unknown, key: K) => void) | undefined;
  readonly #heap: Entry<K>[] = [];
  readonly #entries = new Map<K, Entry<K>>();
  #seq = 0;
  #timer: TimerHandle | undefined;
  /** Due time the current timer was armed for, so unchanged tops do not re-arm. */
  #armedFor: number | undefined;
  #ticks = 0;
  #lastTickExamined = 0;
  #totalExamined = 0;
  #fired = 0;

  constructor(options: DueQueueOptions<K>) {
    super('DueQueue');
    if (typeof options?.onDue !== 'function') {
      throw new InvalidOptionError('onDue', 'must be a function');
    }
    if (options.onError !== undefined && typeof options.onError !== 'function') {
      throw new InvalidOptionError('onError', 'must be a function');
    }
    this.#clock = options.clock ?? systemClock;
    this.#onDue = options.onDue;
    this.#onError = options.onError;
  }

  get size(): number {
    return this.#entries.size;
  }

  get stats(): DueQueueStats {
    return {
      ticks: this.#ticks,
      lastTickExamined: this.#lastTickExamined,
      totalExamined: this.#totalExamined,
      fired: this.#fired,
    };
  }

  /** Schedules `key` at `dueAt` (epoch ms), replacing any earlier schedule of it. A past time fires on the next tick. */
  schedule(key: K, dueAt: number): void {
    if (this.closed) throw new ClosedError('DueQueue');
    if (typeof dueAt !== 'number' || Number.isNaN(dueAt)) {
      throw new InvalidOptionError('dueAt', 'must be a number of epoch milliseconds');
    }
    const existing = this.#entries.get(key);
    if (existing) {
      const earlier = dueAt < existing.dueAt;
      existing.dueAt = dueAt;
      existing.seq = this.#seq++;
      if (earlier) this.#siftUp(existing.index);
      else this.#siftDown(existing.index);
    } else {
      const entry: Entry<K> = { key, dueAt, seq: this.#seq++, index: this.#heap.length };
      this.#heap.push(entry);
      this.#entries.set(key, entry);
      this.#siftUp(entry.index);
    }
    this.#arm();
  }

  /** Removes `key`; returns whether it was scheduled. */
  unschedule(key: K): boolean {
    const entry = this.#entries.get(key);
    if (!entry) return false;
    this.#removeAt(entry.index);
    this.#entries.delete(key);
    this.#arm();
    return true;
  }

  /** The due time of `key`, or undefined when it is not scheduled. */
  dueAt(key: K): number | undefined {
    return this.#entries.get(key)?.dueAt;
  }

  has(key: K): boolean {
    return this.#entries.has(key);
  }

  /** The earliest entry, without removing it. */
  peek(): { key: K; dueAt: number } | undefined {
    const top = this.#heap[0];
    return top ? { key: top.key, dueAt: top.dueAt } : undefined;
  }

  /** Arms the timer again from the current time: after a clock jump, the old delay was measured against the wrong time. */
  rearm(): void {
    if (this.closed) return;
    this.#disarm();
    this.#arm();
  }

  /** Cancels the timer and forgets every key; idempotent. */
  protected onClose(): void {
    this.#disarm();
    this.#heap.length = 0;
    this.#entries.clear();
  }

  #tick(): void {
    this.#timer = undefined;
    this.#armedFor = undefined;
    if (this.closed) return;
    this.#ticks++;
    const now = this.#clock.now();
    // Entries (re)scheduled by an onDue callback during this tick wait for the
    // next one, so a callback that reschedules at "now" cannot spin this loop.
    const seqLimit = this.#seq;
    let examined = 0;
    let firstError: { error: unknown } | undefined;
    for (;;) {
      const top = this.#heap[0];
      if (!top) break;
      examined++;
      if (top.dueAt > now || top.seq >= seqLimit) break;
      this.#removeAt(0);
      this.#entries.delete(top.key);
      this.#fired++;
      try {
        this.#onDue(top.key);
      } catch (error) {
        if (this.#onError) this.#onError(error, top.key);
        else firstError ??= { error };
      }
      if (this.closed) break;
    }
    this.#lastTickExamined = examined;
    this.#totalExamined += examined;
    this.#arm();
    if (firstError) throw firstError.error;
  }

  #arm(): void {
    if (this.closed) return;
    const top = this.#heap[0];
    if (!top) {
      this.#disarm();
      return;
    }
    if (this.#timer && this.#armedFor === top.dueAt) return;
    this.#disarm();
    const delay = Math.min(Math.max(0, top.dueAt - this.#clock.now()), MAX_TIMER_DELAY_MS);
    this.#armedFor = top.dueAt;
    this.#timer = this.#clock.setTimer(() => this.#tick(), delay);
  }

  #disarm(): void {
    this.#timer?.cancel();
    this.#timer = undefined;
    this.#armedFor = undefined;
  }

  #removeAt(index: number): void {
    const heap = this.#heap;
    const last = heap.pop();
    if (!last || index === heap.length) return;
    heap[index] = last;
    last.index = index;
    this.#siftDown(index);
    this.#siftUp(last.index);
  }

  #less(a: Entry<K>, b: Entry<K>): boolean {
    return a.dueAt < b.dueAt || (a.dueAt === b.dueAt && a.seq < b.seq);
  }

  #swap(i: number, j: number): void {
    const heap = this.#heap;
    const a = heap[i] as Entry<K>;
    const b = heap[j] as Entry<K>;
    heap[i] = b;
    heap[j] = a;
    b.index = i;
    a.index = j;
  }

  #siftUp(index: number): void {
    let i = index;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.#less(this.#heap[i] as Entry<K>, this.#heap[parent] as Entry<K>)) break;
      this.#swap(i, parent);
      i = parent;
    }
  }

  #siftDown(index: number): void {
    const heap = this.#heap;
    let i = index;
    for (;;) {
      const left = 2 * i + 1;
      const right = left + 1;
      let smallest = i;
      if (left < heap.length && this.#less(heap[left] as Entry<K>, heap[smallest] as Entry<K>)) smallest = left;
      if (right < heap.length && this.#less(heap[right] as Entry<K>, heap[smallest] as Entry<K>)) smallest = right;
      if (smallest === i) break;
      this.#swap(i, smallest);
      i = smallest;
    }
  }
}
