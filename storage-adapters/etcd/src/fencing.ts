/**
 * Fenced writes: the batch a lock holder applies only while its grant of the
 * lock is still the newest one.
 *
 * The contract (FencedWrite, FencedWriter) is the core's, from `certkeeper/storage`.
 */
import type { FencedWrite } from 'certkeeper/storage';
export type { FencedWrite, FencedWriter } from 'certkeeper/storage';

/** What a batch leaves behind, in storage-key space: values to put, and keys deleted with everything below them. */
export interface WritePlan {
  readonly puts: Map<string, Uint8Array>;
  /** Each deleted key (and its subtree); none lies below another, and put keys survive them. */
  readonly deletes: string[];
}

/**
 * Folds a batch applied in order into its end state: a delete drops the puts
 * before it that it covers, a put after a delete survives it. etcd refuses a
 * transaction whose puts overlap its deletes, so the ranges are later cut
 * around the surviving puts (see deleteRanges) instead of relying on order.
 */
export function planWrites(writes: readonly FencedWrite[], validate: (key: string) => string): WritePlan {
  const puts = new Map<string, Uint8Array>();
  let deletes: string[] = [];
  for (const write of writes) {
    const key = validate(write.key);
    if ('delete' in write && write.delete === true) {
      for (const put of [...puts.keys()]) if (covers(key, put)) puts.delete(put);
      if (deletes.some((d) => covers(d, key))) continue;
      deletes = deletes.filter((d) => !covers(key, d));
      deletes.push(key);
    } else if ('value' in write && write.value instanceof Uint8Array) {
      puts.set(key, write.value);
    } else {
      throw new TypeError(`fenced write for ${key} needs a Uint8Array value or delete: true`);
    }
  }
  return { puts, deletes };
}

/** A half-open range [start, end) of storage keys, compared bytewise like etcd does. */
export interface KeyRange {
  readonly start: string;
  /** Undefined: the one key `start`. */
  readonly end?: string;
}

/**
 * The ranges that delete `key` and everything below it, minus the keys in `keep`
 * (which are written in the same transaction).
 */
export function deleteRanges(key: string, keep: Iterable<string>): KeyRange[] {
  const kept = [...keep];
  const ranges: KeyRange[] = [];
  if (!kept.includes(key)) ranges.push({ start: key });
  // Keys below "k/" sort before "k0" ('0' follows '/').
  const below = kept.filter((k) => k.startsWith(`${key}/`)).sort(compareBytes);
  let start = `${key}/`;
  for (const k of below) {
    if (compareBytes(start, k) < 0) ranges.push({ start, end: k });
    start = `${k}\u0000`;
  }
  ranges.push({ start, end: `${key}0` });
  return ranges;
}

/** True when `parent` is `key` or one of its folders. */
export function covers(parent: string, key: string): boolean {
  return key === parent || key.startsWith(`${parent}/`);
}

export function compareBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}
