#!lua
-- admin_release.lua: an operator completes the in-flight message without
-- waiting for the members that have not acked it; they stay members, and
-- their tokens for it become stale. The next message is released in the
-- same step, unless the room is paused. In a windowed room (room.lua) it
-- completes the oldest message in flight as a straggler skip does: the
-- members that had not acked it are excused from it (their position moves
-- to it), so its late ack is one they already cover.
-- include: room.lua
-- KEYS: the room keys (room.lua).
-- ARGV: 1-5 common (room.lua); 6 actor; 7 reason.
-- Returns: {status, now ms, released count, {members that had not acked}}
--   status: OK, NO_ROOM (the room holds nothing), NO_INFLIGHT (no message
--           in flight; nothing changed).
if not META.ep then return {'NO_ROOM', NOW, 0, {}} end
local seq = META.f
if not seq then return {'NO_INFLIGHT', NOW, 0, {}} end
local missing = {}
if WINDOWED then
  -- The oldest of the window; the members behind stay so (room.lua).
  missing = win().force() or {}
else
  local acked = {}
  for _, c in ipairs(rcall('HKEYS', KEYS[K_ACK])) do acked[c] = true end
  for _, c in ipairs(rcall('ZRANGE', KEYS[K_MEM], 0, -1)) do
    if not acked[c] then missing[#missing + 1] = c end
  end
  table.sort(missing)
end
-- Client IDs hold no control character, so a newline separates them.
append({'t', 'F', 'a', ARGV[6], 'r', ARGV[7], 'id', seq, 'ms', table.concat(missing, '\n')})
ACKED_ALL = true
local n = settle()
return {'OK', NOW, n, missing}
