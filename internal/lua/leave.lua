#!lua
-- leave.lua: remove a member or observer; if it was the last vote missing,
-- the next message is released in the same step.
-- include: room.lua
-- KEYS: the room keys (room.lua).
-- ARGV: 1-5 common (room.lua); 6 client ID.
-- Returns: {"OK" | "NOT_MEMBER", released count, last released seq or false}
reap()
if not drop(ARGV[6], 'l', 'leave') then
  local n, last = settle() -- reap() above may have opened the barrier
  return {'NOT_MEMBER', n, last or false}
end
local n, last = settle()
return {'OK', n, last or false}
