#!lua
-- reap.lua: housekeeping for one room found due in its shard's deadline
-- index: evict expired members, then release what the barrier allows.
-- include: room.lua
-- KEYS: the room keys (room.lua).
-- ARGV: 1-5 common (room.lua).
-- Returns: {"OK", evicted count, released count}
local evicted = reap()
local n = settle()
return {'OK', evicted, n}
