/**
 * One way to close a part. Every closable part of certkeeper closes the same
 * way: `close()` may be called any number of times and always returns the same
 * promise; it aborts the part's signal, waits for the work the part tracked,
 * then releases what the part holds. `await using` works through
 * `Symbol.asyncDispose`.
 */
import { ClosedError } from './errors.js';

export interface CloseStep {
  /** Runs after the close signal fired and tracked work settled: clear timers, close handles, release locks. */
  (): void | Promise<void>;
}

/** Composition form, for classes that already extend something (or keep their state private). */
export class Lifecycle {
  readonly #controller = new AbortController();
  readonly #work = new Set<Promise<unknown>>();
  readonly #what: string;
  readonly #release: CloseStep;
  #closing: Promise<void> | undefined;

  constructor(what: string, release: CloseStep = () => undefined) {
    this.#what = what;
    this.#release = release;
  }

  /** Aborted (with a ClosedError) as soon as close() starts. */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** True from the first close() call on. */
  get closed(): boolean {
    return this.#closing !== undefined;
  }

  /** How many tracked promises are still running. */
  get pending(): number {
    return this.#work.size;
  }

  /** Throws ClosedError once close() was called. */
  assertOpen(): void {
    if (this.#closing) throw new ClosedError(this.#what);
  }

  /** close() waits for `promise` to settle; its rejection stays the caller's to handle. */
  track<T>(promise: Promise<T>): Promise<T> {
    this.#work.add(promise);
    const forget = (): void => {
      this.#work.delete(promise);
    };
    promise.then(forget, forget);
    return promise;
  }

  close(): Promise<void> {
    this.#closing ??= this.#run();
    return this.#closing;
  }

  async #run(): Promise<void> {
    this.#controller.abort(new ClosedError(this.#what));
    // Work may start more work while it unwinds: wait until none is left.
    while (this.#work.size > 0) await Promise.allSettled([...this.#work]);
    await this.#release();
  }
}

/** Base-class form: a subclass implements `onClose()` and uses `track()`/`assertOpen()`. */
export abstract class Closable implements AsyncDisposable {
  readonly #lifecycle: Lifecycle;

  constructor(what: string) {
    this.#lifecycle = new Lifecycle(what, () => this.onClose());
  }

  /** Idempotent; resolves when the part's work has stopped and its resources are released. */
  close(): Promise<void> {
    return this.#lifecycle.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** Releases the part's resources; runs once, after tracked work settled. */
  protected abstract onClose(): void | Promise<void>;

  protected get closed(): boolean {
    return this.#lifecycle.closed;
  }

  protected get closeSignal(): AbortSignal {
    return this.#lifecycle.signal;
  }

  protected track<T>(promise: Promise<T>): Promise<T> {
    return this.#lifecycle.track(promise);
  }

  protected assertOpen(): void {
    this.#lifecycle.assertOpen();
  }
}
