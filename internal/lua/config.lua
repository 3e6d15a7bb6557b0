#!lua
-- config.lua: one housekeeping round's look at the deployment-wide
-- settings. Stores this Queue's NumShards when the hash has none (Redis
-- restarted without persistence, evicted the key, or someone deleted it),
-- so a Queue started afterwards with another count is refused instead of
-- splitting the deployment; never overwrites a stored value. Stamps this
-- shard count as live until now + lifetime, and drops expired stamps, so
-- every Queue can see which shard counts are running.
-- KEYS: 1 the config HASH (the {global} tag): numShards, live:<n> -> ms.
-- ARGV: 1 this Queue's NumShards, 2 the live stamp's lifetime (ms).
-- Returns: {now ms, 1 if this call stored numShards else 0,
--           field, value, ... (the hash after the call)}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local stored = redis.call('HSETNX', KEYS[1], 'numShards', ARGV[1])
redis.call('HSET', KEYS[1], 'live:' .. ARGV[1], now + tonumber(ARGV[2]))
local all = redis.call('HGETALL', KEYS[1])
local res = {now, stored}
for i = 1, #all, 2 do
  local f, v = all[i], all[i + 1]
  if string.sub(f, 1, 5) == 'live:' and (tonumber(v) or 0) <= now then
    redis.call('HDEL', KEYS[1], f)
  else
    res[#res + 1] = f
    res[#res + 1] = v
  end
end
return res
