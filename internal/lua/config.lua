#!lua
-- config.lua: one housekeeping round's look at the deployment-wide
-- settings. Stores this Queue's NumShards when the hash has none (Redis
-- restarted without persistence, evicted the key, or someone deleted it),
-- so that a Queue started afterwards with another count is refused instead
-- of splitting the deployment; never overwrites a stored value. When the
-- deployment is split (another count stored, or another count stamped
-- live), stamps this count live until now + lifetime, so that every Queue
-- and every New sees which counts are running. Drops expired stamps. A
-- deployment that agrees is not written to at all.
-- KEYS: 1 the config HASH (the {global} tag): numShards, live:<n> -> ms.
-- ARGV: 1 this Queue's NumShards, 2 the live stamp's lifetime (ms).
-- Returns: {now ms, 1 if this call stored numShards else 0,
--           field, value, ... (the hash after the call)}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local mine = 'live:' .. ARGV[1]
local restored = redis.call('HSETNX', KEYS[1], 'numShards', ARGV[1])
local all = redis.call('HGETALL', KEYS[1])
local res = {now, restored}
local split = false
for i = 1, #all, 2 do
  local f, v = all[i], all[i + 1]
  if string.sub(f, 1, 5) == 'live:' and (tonumber(v) or 0) <= now then
    redis.call('HDEL', KEYS[1], f)
  else
    if (f == 'numShards' and v ~= ARGV[1]) or (string.sub(f, 1, 5) == 'live:' and f ~= mine) then
      split = true
    end
    if f ~= mine then
      res[#res + 1] = f
      res[#res + 1] = v
    end
  end
end
if split then
  local until_ms = now + tonumber(ARGV[2])
  redis.call('HSET', KEYS[1], mine, until_ms)
  res[#res + 1] = mine
  res[#res + 1] = until_ms
end
return res
