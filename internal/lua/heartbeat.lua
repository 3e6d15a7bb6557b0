#!lua
-- heartbeat.lua: extend the deadline of some members or observers of one room.
-- Expired members are reaped first, so a heartbeat that arrives after its
-- deadline reports the client as gone instead of reviving it.
-- include: room.lua
-- KEYS: the room keys (room.lua).
-- ARGV: 1-5 common (room.lua); 6 timeout ms; 7.. client IDs.
-- Returns: {"OK", released count, 1|0 per client (still in the room or not)}
ACKLESS = true
reap()
local deadline = NOW + tonumber(ARGV[6])
local res = {'OK', 0}
for i = 7, #ARGV do
  local c = ARGV[i]
  local alive = 0
  if redis.call('ZSCORE', KEYS[K_MEM], c) then
    redis.call('ZADD', KEYS[K_MEM], deadline, c)
    alive = 1
  elseif redis.call('ZSCORE', KEYS[K_OBS], c) then
    redis.call('ZADD', KEYS[K_OBS], deadline, c)
    alive = 1
  end
  if alive == 1 then
    redis.call('HSET', KEYS[K_SEEN], c, NOW)
    DEADLINES = true
  end
  res[#res + 1] = alive
end
res[2] = settle()
return res
