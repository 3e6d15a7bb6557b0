#!lua flags=no-writes
-- due.lua: rooms of one shard whose earliest deadline has passed, by the
-- server clock.
-- KEYS: 1 the shard's due ZSET.
-- ARGV: 1 the most rooms to return.
-- Returns: {now ms, room...}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local res = {now}
for _, r in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))) do
  res[#res + 1] = r
end
return res
