#!lua flags=no-writes
-- peek.lua: pending messages of a room in release order, changing nothing.
-- KEYS: the room keys (see room.lua); only 10..19 (the priority lists) are read.
-- ARGV: 1 offset, 2 limit.
-- Returns: {priority, entry, priority, entry, ...}
local skip = tonumber(ARGV[1])
local want = tonumber(ARGV[2])
local res = {}
for p = 0, 9 do
  if want <= 0 then break end
  local key = KEYS[10 + p]
  local len = redis.call('LLEN', key)
  if skip >= len then
    skip = skip - len
  else
    for _, m in ipairs(redis.call('LRANGE', key, skip, skip + want - 1)) do
      res[#res + 1] = p
      res[#res + 1] = m
      want = want - 1
    end
    skip = 0
  end
end
return res
