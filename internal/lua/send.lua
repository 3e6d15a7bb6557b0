#!lua
-- send.lua: enqueue one or more messages (a batch keeps its order and gets
-- consecutive seqs) and release the first at once if the barrier is open.
-- include: room.lua
-- KEYS: the room keys (room.lua).
-- ARGV: 1-5 common (room.lua); 6 priority 0..9; 7 producer; 8.. payloads.
-- Returns: {"OK", seq of the first message, epoch, released count,
--           last released seq or false, now ms,
--           stream ID before the appended entries or false,
--           appended entries {{id, {field, value, ...}}, ...}}
TRACK = true
local ep = epoch()
local first = tonumber(META.seq or '0') + 1
local count = #ARGV - 7
local prio = tonumber(ARGV[6])
local producer = ARGV[7]
-- One RPUSH for the whole batch.
local push = {'RPUSH', KEYS[K_Q0 + prio]}
local tail = string.format(':%d:%d:', NOW, #producer) .. producer
for i = 1, count do
  push[#push + 1] = string.format('%d', first + i - 1) .. tail .. ARGV[7 + i]
end
redis.call(unpack(push))
mset('seq', first + count - 1)
mset('pend', tonumber(META.pend or '0') + count)
redis.call('HINCRBY', KEYS[K_STATS], 'backlog', count)
if META.hold ~= HOLD then mset('hold', HOLD) end
reap()
local n, last = settle()
return {'OK', first, ep, n, last or false, NOW, PREV or false, APPENDED}
