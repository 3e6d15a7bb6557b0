#!lua
-- send.lua: enqueue one message and release it at once if the barrier is open.
-- include: room.lua
-- KEYS: the room keys (room.lua).
-- ARGV: 1-5 common (room.lua); 6 priority 0..9; 7 producer; 8 payload.
-- Returns: {"OK", seq, epoch, released count, last released seq or false, now ms,
--           stream ID before the appended entries or false,
--           appended entries {{id, {field, value, ...}}, ...}}
TRACK = true
local ep = epoch()
local seq = redis.call('HINCRBY', KEYS[K_META], 'seq', 1)
local prio = tonumber(ARGV[6])
local producer = ARGV[7]
redis.call('RPUSH', KEYS[K_Q0 + prio],
  string.format('%d:%d:%d:', seq, NOW, #producer) .. producer .. ARGV[8])
redis.call('HINCRBY', KEYS[K_META], 'pend', 1)
redis.call('HINCRBY', KEYS[K_STATS], 'backlog', 1)
redis.call('HSET', KEYS[K_META], 'hold', ARGV[5])
reap()
local n, last = settle()
return {'OK', seq, ep, n, last or false, NOW, PREV or false, APPENDED}
