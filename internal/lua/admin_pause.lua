#!lua
-- admin_pause.lua: an operator pauses a room. While paused, sends are
-- accepted and queued, the in-flight message can still be acked (and
-- completes), out-of-band messages still go out, and nothing new is
-- released; admin_resume.lua ends it.
-- include: room.lua
-- KEYS: the room keys (room.lua).
-- ARGV: 1-5 common (room.lua); 6 actor; 7 reason.
-- Returns: {status, now ms}
--   status: OK, NO_ROOM (the room holds nothing: never used, expired or
--           deleted), PAUSED (already paused; nothing changed).
if not META.ep then return {'NO_ROOM', NOW} end
if META.pz then return {'PAUSED', NOW} end
mset('pz', NOW)
mset('pb', ARGV[6])
mset('pr', ARGV[7])
append({'t', 'P', 'a', ARGV[6], 'r', ARGV[7]})
settle()
return {'OK', NOW}
