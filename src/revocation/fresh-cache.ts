/**
 * A bounded cache of fetched revocation data: an entry is served while fresh,
 * concurrent misses for one key share one load, and the least recently loaded
 * entry goes first when the cache is full. One copy for CRLs and OCSP answers.
 */
export class FreshCache<T> {
  readonly #entries = new Map<string, { freshUntil: number; value: T }>();
  readonly #inflight = new Map<string, Promise<T>>();
  readonly #maxEntries: number;

  constructor(maxEntries: number) {
    this.#maxEntries = maxEntries;
  }

  /** The fresh value of `key` at `now`, else the load in flight for it, else a new `load()` that says how long its value stays fresh. */
  get(key: string, now: number, load: () => Promise<{ value: T; freshUntil: number }>): Promise<T> {
    const cached = this.#entries.get(key);
    if (cached && now < cached.freshUntil) return Promise.resolve(cached.value);
    const running = this.#inflight.get(key);
    if (running) return running;
    const work = load()
      .then(({ value, freshUntil }) => {
        this.#entries.delete(key);
        this.#entries.set(key, { freshUntil, value });
        while (this.#entries.size > this.#maxEntries) this.#entries.delete(this.#entries.keys().next().value as string);
        return value;
      })
      .finally(() => this.#inflight.delete(key));
    this.#inflight.set(key, work);
    return work;
  }

  /** Until when `key`'s cached value is fresh, if one is cached. */
  freshUntil(key: string): number | undefined {
    return this.#entries.get(key)?.freshUntil;
  }
}
