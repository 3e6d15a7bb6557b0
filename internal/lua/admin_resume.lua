#!lua
-- admin_resume.lua: an operator ends a room's pause; what the barrier
-- allows is released in the same step.
-- include: room.lua
-- KEYS: the room keys (room.lua).
-- ARGV: 1-5 common (room.lua); 6 actor; 7 reason.
-- Returns: {status, now ms, released count}
--   status: OK, NO_ROOM (the room holds nothing), NOT_PAUSED (nothing
--           changed).
if not META.ep then return {'NO_ROOM', NOW, 0} end
if not META.pz then return {'NOT_PAUSED', NOW, 0} end
mset('pz', false)
mset('pb', false)
mset('pr', false)
append({'t', 'R', 'a', ARGV[6], 'r', ARGV[7]})
reap()
local n = settle()
return {'OK', NOW, n}
