#!lua
-- admin_purge.lua: an operator drops pending messages of a room: all of
-- them, those of one priority level, and/or those whose message ID is at
-- most a given one. The in-flight message is not pending and stays.
-- include: room.lua
-- KEYS: the room keys (room.lua).
-- ARGV: 1-5 common (room.lua); 6 actor; 7 reason; 8 priority level (-1:
--       every level); 9 up-to message ID (decimal, "" for no bound).
-- Returns: {status, now ms, dropped count}
--   status: OK, NO_ROOM (the room holds nothing; nothing changed).
if not META.ep then return {'NO_ROOM', NOW, 0} end
local prio = tonumber(ARGV[8])
local upto = ARGV[9]
-- Message IDs may pass 2^53, beyond a Lua number: compared as decimal
-- strings without leading zeros.
local function le(a, b)
  if #a ~= #b then return #a < #b end
  return a <= b
end
local from, to = 0, LEVELS - 1
if prio >= 0 then from, to = prio, prio end
local dropped = 0
for p = from, to do
  local key = KEYS[K_Q0 + p]
  if upto == '' then
    local len = rcall('LLEN', key)
    if len > 0 then
      rcall('DEL', key)
      dropped = dropped + len
    end
  else
    -- Each list is in ascending ID order (send.lua appends increasing
    -- IDs), so the entries to drop are a prefix. Entries without a
    -- readable ID (not written by send.lua) go with the prefix they sit in.
    local cut, done = 0, false
    while not done do
      local chunk = rcall('LRANGE', key, cut, cut + 999)
      for _, m in ipairs(chunk) do
        local seq = string.match(m, '^([1-9]%d*):')
        if seq and not le(seq, upto) then
          done = true
          break
        end
        cut = cut + 1
      end
      if #chunk < 1000 then done = true end
    end
    -- LMPOP rather than LTRIM: the library's ACL user already has it
    -- (docs/security.md), so operators need no other command.
    local left = cut
    while left > 0 do
      local n = math.min(left, 1000)
      rcall('LMPOP', 1, key, 'LEFT', 'COUNT', n)
      left = left - n
    end
    dropped = dropped + cut
  end
end
-- pend counts the messages send.lua queued; entries it did not write were
-- never counted, so the counter is clamped rather than trusted to match.
local pend = tonumber(META.pend or '0')
local np = math.max(pend - dropped, 0)
if np ~= pend then
  mset('pend', np)
  rcall('HINCRBY', KEYS[K_STATS], 'backlog', np - pend)
end
local ev = {'t', 'U', 'a', ARGV[6], 'r', ARGV[7], 'n', dropped}
if prio >= 0 then
  ev[#ev + 1] = 'pr'
  ev[#ev + 1] = prio
end
if upto ~= '' then
  ev[#ev + 1] = 'id'
  ev[#ev + 1] = upto
end
append(ev)
settle()
return {'OK', NOW, dropped}
