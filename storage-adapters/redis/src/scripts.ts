/**
 * The Lua scripts of RedisStorage. Each runs atomically on the server: no
 * other command sees a state between its steps.
 */
import { createHash } from 'node:crypto';

// Takes a free lease and counts the grant: the new fencing token, or 0 when the lease is held.
export const ACQUIRE_SCRIPT = `
if redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX') then
  return redis.call('INCR', KEYS[2])
end
return 0`;

// Extends a lease only if this holder still owns it.
export const REFRESH_SCRIPT = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0`;

// Deletes a lock only if this holder still owns it, so a late unlock never frees another holder's lock.
export const RELEASE_SCRIPT = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0`;

/** Lua that deletes a key and every key below it (lex range start..stop), value and index entry. */
function deleteBelow(index: string, dataPrefix: string, key: string, start: string, stop: string): string {
  return `
redis.call('DEL', ${dataPrefix} .. ${key})
redis.call('ZREM', ${index}, ${key})
while true do
  local batch = redis.call('ZRANGEBYLEX', ${index}, ${start}, ${stop}, 'LIMIT', 0, 500)
  if #batch == 0 then break end
  for _, k in ipairs(batch) do
    redis.call('DEL', ${dataPrefix} .. k)
    redis.call('ZREM', ${index}, k)
  end
end`;
}

// KEYS[1] index; ARGV: data key prefix, key, range start and end of the keys below it.
export const DELETE_SCRIPT = `${deleteBelow('KEYS[1]', 'ARGV[1]', 'ARGV[2]', 'ARGV[3]', 'ARGV[4]')}
return 0`;

// KEYS: lock, fence counter, index. ARGV: holder token, fencing token, data key prefix, modified ms, then
// per write 's', key, value or 'd', key, range start and end of the keys below it. Nothing is written
// unless the lease is still this holder's under this grant.
export const FENCED_WRITE_SCRIPT = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] or redis.call('GET', KEYS[2]) ~= ARGV[2] then return 0 end
local i = 5
while i <= #ARGV do
  local key = ARGV[i + 1]
  if ARGV[i] == 's' then
    redis.call('HSET', ARGV[3] .. key, 'v', ARGV[i + 2], 'm', ARGV[4])
    redis.call('ZADD', KEYS[3], 0, key)
    i = i + 3
  else${deleteBelow('KEYS[3]', 'ARGV[3]', 'key', 'ARGV[i + 2]', 'ARGV[i + 3]')}
    i = i + 4
  end
end
return 1`;

// One page of a folder listing: KEYS[1] index; ARGV: range start, range end, page size, length of the listed
// prefix with its '/'. Returns the entries read, the last of them, and the distinct folder names among them
// (in order), so a million folders of 3 keys each cross the wire as a million short names, not 3M key paths.
export const LIST_FOLDERS_SCRIPT = `
local entries = redis.call('ZRANGEBYLEX', KEYS[1], ARGV[1], ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
local from = tonumber(ARGV[4]) + 1
local folders = {}
local previous = false
for _, k in ipairs(entries) do
  local slash = string.find(k, '/', from, true)
  if slash then
    local name = string.sub(k, from, slash - 1)
    if name ~= previous then
      folders[#folders + 1] = name
      previous = name
    end
  end
end
return { #entries, entries[#entries] or '', folders }`;

const shas = new Map<string, string>();
export function scriptSha(script: string): string {
  let sha = shas.get(script);
  if (sha === undefined) {
    sha = createHash('sha1').update(script).digest('hex');
    shas.set(script, sha);
  }
  return sha;
}
