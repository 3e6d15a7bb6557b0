#!lua flags=no-writes
-- state.lua: a consistent snapshot of one room.
-- KEYS: the room keys (see room.lua).
-- ARGV: none.
-- Returns: {now ms, meta (flat HGETALL), members (flat ZRANGE WITHSCORES),
--           seen (flat HGETALL), acks (flat HGETALL), observers (flat ZRANGE
--           WITHSCORES), pending per priority {len0..len9}, stream length}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lens = {}
for p = 0, 9 do lens[#lens + 1] = redis.call('LLEN', KEYS[10 + p]) end
return {
  now,
  redis.call('HGETALL', KEYS[1]),
  redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES'),
  redis.call('HGETALL', KEYS[3]),
  redis.call('HGETALL', KEYS[4]),
  redis.call('ZRANGE', KEYS[5], 0, -1, 'WITHSCORES'),
  lens,
  redis.call('XLEN', KEYS[6]),
}
