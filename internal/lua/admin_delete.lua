#!lua
-- admin_delete.lua: an operator deletes a room. Its members and observers
-- are told first (a D event, published to the readers like any other),
-- then every key of the room goes, history included, and the room leaves
-- the shard's indexes and totals. Using the room name again starts a new
-- room (a new epoch: tokens of this one are refused with EPOCH).
-- include: room.lua
-- KEYS: the room keys (room.lua).
-- ARGV: 1-5 common (room.lua); 6 actor; 7 reason.
-- Returns: {status, now ms, members, observers, pending messages dropped}
--   status: OK, NO_ROOM (the room holds nothing; nothing changed).
if not META.ep then return {'NO_ROOM', NOW, 0, 0, 0} end
append({'t', 'D', 'a', ARGV[6], 'r', ARGV[7]})
local nmem = rcall('ZCARD', KEYS[K_MEM])
local nobs = rcall('ZCARD', KEYS[K_OBS])
local pend = tonumber(META.pend or '0')
if nmem > 0 then rcall('HINCRBY', KEYS[K_STATS], 'members', -nmem) end
if nobs > 0 then rcall('HINCRBY', KEYS[K_STATS], 'observers', -nobs) end
if pend > 0 then rcall('HINCRBY', KEYS[K_STATS], 'backlog', -pend) end
local del = {'DEL'}
for i = K_META, K_STREAM do del[#del + 1] = KEYS[i] end
for p = 0, LEVELS - 1 do del[#del + 1] = KEYS[K_Q0 + p] end
del[#del + 1] = KEYS[K_INC]
rcall(unpack(del))
rcall('ZREM', KEYS[K_ROOMS], ROOM)
rcall('ZREM', KEYS[K_DUE], ROOM)
return {'OK', NOW, nmem, nobs, pend}
