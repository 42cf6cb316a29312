/** Key arithmetic of RedisStorage's sorted-set indexes (pure functions, no Redis). */
import { joinKey } from 'certkeeper/storage';

/** ZRANGEBYLEX bounds of every key strictly below `key`: "key/" up to (not including) "key0" ('0' follows '/'). */
export function below(key: string): [string, string] {
  return [`[${key}/`, `(${key}0`];
}

/** ZADD arguments for every folder above `key` ('a/b/c' -> a, a/b). */
export function foldersAbove(key: string): (string | number)[] {
  const args: (string | number)[] = [];
  for (let at = key.indexOf('/'); at !== -1; at = key.indexOf('/', at + 1)) args.push(0, key.slice(0, at));
  return args;
}

/** Adds what `relative` (a key below the listed prefix) contributes to a listing: its first component, or every level. */
export function addListed(found: Set<string>, prefix: string, relative: string, recursive: boolean): void {
  const parts = relative.split('/');
  if (!recursive) {
    found.add(joinKey(prefix, parts[0] ?? ''));
    return;
  }
  let path = prefix;
  for (const part of parts) {
    path = joinKey(path, part);
    found.add(path);
  }
}
