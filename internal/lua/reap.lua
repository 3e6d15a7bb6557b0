#!lua
-- reap.lua: housekeeping for one room found due in its shard's deadline
-- index: evict expired members, then release what the barrier allows; an
-- idle room past its expiry is deleted, history included, and one whose
-- oldest event passed StreamMaxAge is trimmed (room.lua, index_idle).
-- include: room.lua
-- KEYS: the room keys (room.lua).
-- ARGV: 1-5 common (room.lua).
-- Returns: {"OK", evicted count, released count, 1 if the room was deleted else 0}
local evicted = reap()
local n = settle()
return {'OK', evicted, n, EXPIRED and 1 or 0}
