#!lua
-- oob.lua: append an out-of-band message to the delivery stream. It ignores
-- and never changes the barrier, so it neither reaps nor releases.
-- include: room.lua
-- KEYS: the room keys (room.lua).
-- ARGV: 1-5 common (room.lua); 6 producer; 7 payload.
-- Returns: {"OK", seq, epoch, stream ID, now ms}, or, writing nothing,
--   {"TOO_LARGE", 0, payload size, the room's MaxPayloadBytes}.
local refused = payload_refusal(7)
if refused then return refused end
local ep = epoch()
local seq = tonumber(META.seq or '0') + 1
mset('seq', seq)
local id = append({'t', 'o', 'id', seq, 'p', ARGV[6], 'et', NOW, 'd', ARGV[7]})
flush_meta()
return {'OK', seq, ep, id, NOW}
