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

// Lua helpers for the folder index (every folder that has a key below it, at every level): adds the folders
// above a stored key; drops a deleted key's own folders and each folder above it left with nothing below.
const FOLDER_HELPERS = `
local function addFolders(folders, key)
  local at = string.find(key, '/', 1, true)
  while at do
    redis.call('ZADD', folders, 0, string.sub(key, 1, at - 1))
    at = string.find(key, '/', at + 1, true)
  end
end
local function dropFolders(index, folders, key)
  redis.call('ZREM', folders, key)
  redis.call('ZREMRANGEBYLEX', folders, '[' .. key .. '/', '(' .. key .. '0')
  local parent = string.match(key, '^(.*)/[^/]*$')
  while parent do
    if #redis.call('ZRANGEBYLEX', index, '[' .. parent .. '/', '(' .. parent .. '0', 'LIMIT', 0, 1) > 0 then break end
    redis.call('ZREM', folders, parent)
    parent = string.match(parent, '^(.*)/[^/]*$')
  end
end`;

/** Lua that deletes a key and every key below it (lex range start..stop), value and index entries. */
function deleteBelow(index: string, folders: string, dataPrefix: string, key: string, start: string, stop: string): string {
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
end
dropFolders(${index}, ${folders}, ${key})`;
}

// KEYS[1] index, KEYS[2] folder index; ARGV: data key prefix, key, range start and end of the keys below it.
export const DELETE_SCRIPT = `${FOLDER_HELPERS}
${deleteBelow('KEYS[1]', 'KEYS[2]', 'ARGV[1]', 'ARGV[2]', 'ARGV[3]', 'ARGV[4]')}
return 0`;

// KEYS: lock, fence counter, index, folder index. ARGV: holder token, fencing token, data key prefix, modified
// ms, then per write 's', key, value or 'd', key, range start and end of the keys below it. Nothing is
// written unless the lease is still this holder's under this grant.
export const FENCED_WRITE_SCRIPT = `${FOLDER_HELPERS}
if redis.call('GET', KEYS[1]) ~= ARGV[1] or redis.call('GET', KEYS[2]) ~= ARGV[2] then return 0 end
local i = 5
while i <= #ARGV do
  local key = ARGV[i + 1]
  if ARGV[i] == 's' then
    redis.call('HSET', ARGV[3] .. key, 'v', ARGV[i + 2], 'm', ARGV[4])
    redis.call('ZADD', KEYS[3], 0, key)
    addFolders(KEYS[4], key)
    i = i + 3
  else${deleteBelow('KEYS[3]', 'KEYS[4]', 'ARGV[3]', 'key', 'ARGV[i + 2]', 'ARGV[i + 3]')}
    i = i + 4
  end
end
return 1`;

// One page of building the folder index of a store written before it existed: KEYS[1] index, KEYS[2]
// folder index; ARGV: range start, page size. Atomic per page, so a delete never sees a half-built page.
// Returns the entries read and the last of them.
export const BACKFILL_FOLDERS_SCRIPT = `
local entries = redis.call('ZRANGEBYLEX', KEYS[1], ARGV[1], '+', 'LIMIT', 0, tonumber(ARGV[2]))
local seen = {}
for _, key in ipairs(entries) do
  local at = string.find(key, '/', 1, true)
  while at do
    local folder = string.sub(key, 1, at - 1)
    if not seen[folder] then
      seen[folder] = true
      redis.call('ZADD', KEYS[2], 0, folder)
    end
    at = string.find(key, '/', at + 1, true)
  end
end
return { #entries, entries[#entries] or '' }`;

const shas = new Map<string, string>();
export function scriptSha(script: string): string {
  let sha = shas.get(script);
  if (sha === undefined) {
    sha = createHash('sha1').update(script).digest('hex');
    shas.set(script, sha);
  }
  return sha;
}
