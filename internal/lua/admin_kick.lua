#!lua
-- admin_kick.lua: an operator removes a member or observer, as an
-- eviction would (its acks and membership go; if it was the last ack
-- missing, the next message is released in the same step), but recorded
-- as a kick so that its process can tell it from a timeout.
-- include: room.lua
-- KEYS: the room keys (room.lua).
-- ARGV: 1-5 common (room.lua); 6 actor; 7 reason; 8 client ID.
-- Returns: {status, now ms, released count, role ("m" member, "o" observer)}
--   status: OK, NO_ROOM (the room holds nothing), NOT_MEMBER (the client
--           is neither member nor observer; nothing changed).
if not META.ep then return {'NO_ROOM', NOW, 0, ''} end
local role = drop(ARGV[8], 'K', ARGV[7], ARGV[6])
if not role then return {'NOT_MEMBER', NOW, 0, ''} end
local n = settle()
return {'OK', NOW, n, role}
