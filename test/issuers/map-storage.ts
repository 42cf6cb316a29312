import { StorageNotFoundError } from '../../src/errors.js';
import type { KeyInfo, LockOptions, Storage } from '../../src/storage/types.js';

/**
 * A minimal in-memory Storage for the issuer tests (MemoryStorage is written
 * elsewhere); its locks really exclude, and it counts writes per key.
 */
export class MapStorage implements Storage {
  readonly values = new Map<string, Buffer>();
  readonly writes = new Map<string, number>();
  readonly #locks = new Map<string, Promise<void>>();
  readonly #releases = new Map<string, () => void>();

  async store(key: string, value: Uint8Array): Promise<void> {
    this.values.set(key, Buffer.from(value));
    this.writes.set(key, (this.writes.get(key) ?? 0) + 1);
  }

  async load(key: string): Promise<Buffer> {
    const value = this.values.get(key);
    if (value === undefined) throw new StorageNotFoundError(key);
    return Buffer.from(value);
  }

  async delete(key: string): Promise<void> {
    for (const k of [...this.values.keys()]) if (k === key || k.startsWith(`${key}/`)) this.values.delete(k);
  }

  async exists(key: string): Promise<boolean> {
    return this.values.has(key);
  }

  async list(prefix: string): Promise<string[]> {
    const keys = [...this.values.keys()].filter((k) => k.startsWith(`${prefix}/`));
    if (keys.length === 0) throw new StorageNotFoundError(prefix);
    return keys;
  }

  async stat(key: string): Promise<KeyInfo> {
    const value = await this.load(key);
    return { key, modified: new Date(0), size: value.length, isTerminal: true };
  }

  async lock(name: string, options: LockOptions = {}): Promise<void> {
    for (;;) {
      options.signal?.throwIfAborted();
      const held = this.#locks.get(name);
      if (!held) break;
      await held;
    }
    this.#locks.set(name, new Promise((resolve) => this.#releases.set(name, resolve)));
  }

  async unlock(name: string): Promise<void> {
    const release = this.#releases.get(name);
    this.#locks.delete(name);
    this.#releases.delete(name);
    release?.();
  }
}
