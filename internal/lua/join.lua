#!lua
-- join.lua: add a voting member or an observer.
-- include: room.lua
-- KEYS: the room keys (room.lua).
-- ARGV: 1-5 common (room.lua); 6 client ID; 7 role ("m" member, "o" observer);
--       8 heartbeat timeout ms.
-- Returns: {"OK" | "ALREADY", stream ID to read after, epoch, now ms, "",
--           owed entries, incarnation ("" for an observer)}
--   ALREADY: the client was already in the room (its heartbeat is refreshed
--   and it keeps its role); the stream ID is then the newest entry, and
--   when it is a member that has not acked the in-flight message, the owed
--   entries hold that message's stream entry ({{id, {field, value...}}},
--   else empty): the process subscribing it again (a restarted gateway, say)
--   must deliver it, since nothing else will and the room waits for the ack.
--   In a windowed room (room.lua) the owed entries are every message the
--   member has not acked, oldest first.
--   The incarnation names the membership: a member's is the stream ID of the
--   join event that made it one, kept while it stays (ALREADY returns it
--   again, so tokens issued before stay valid), dropped when it leaves or is
--   evicted. Ack tokens carry it and the ack scripts compare it.
local ep = epoch()
reap()
-- A windowed room (room.lua) converts from lock-step before members change.
if WINDOWED then win().load() end
local c, role = ARGV[6], ARGV[7]
local deadline = NOW + tonumber(ARGV[8])
local status, from
local owed = {}
local inc = ''
DEADLINES = true
local was_member = false
if rcall('ZSCORE', KEYS[K_MEM], c) then
  rcall('ZADD', KEYS[K_MEM], deadline, c)
  status = 'ALREADY'
  was_member = true
  local fs = META.fs
  if WINDOWED then
    owed = win().owed(c) -- every message it has not acked, oldest first
  elseif fs and rcall('HEXISTS', KEYS[K_ACK], c) == 0 then
    owed = rcall('XRANGE', KEYS[K_STREAM], fs, fs)
  end
elseif rcall('ZSCORE', KEYS[K_OBS], c) then
  rcall('ZADD', KEYS[K_OBS], deadline, c)
  status = 'ALREADY'
end
if status then
  local last = rcall('XREVRANGE', KEYS[K_STREAM], '+', '-', 'COUNT', 1)
  from = last[1] and last[1][1] or '0-0'
  if was_member then
    inc = rcall('HGET', KEYS[K_INC], c)
    if not inc then
      -- A member without one (its record was lost): no earlier membership
      -- of c can have the newest stream ID, since its end appended an event.
      inc = from
      rcall('HSET', KEYS[K_INC], c, inc)
    end
  end
else
  status = 'OK'
  MEMBERS = true
  if role == 'o' then
    rcall('ZADD', KEYS[K_OBS], deadline, c)
    rcall('HINCRBY', KEYS[K_STATS], 'observers', 1)
  else
    rcall('ZADD', KEYS[K_MEM], deadline, c)
    rcall('HINCRBY', KEYS[K_STATS], 'members', 1)
    -- Joining mid-flight: the newcomer never saw the in-flight message, so
    -- the barrier must not wait for it (0 marks "not required").
    if WINDOWED then
      win().join(c)
    elseif META.f then
      rcall('HSET', KEYS[K_ACK], c, 0)
    end
  end
  from = append({'t', 'j', 'c', c, 'o', role})
  if role ~= 'o' then
    inc = from
    rcall('HSET', KEYS[K_INC], c, inc)
  end
end
rcall('HSET', KEYS[K_SEEN], c, NOW)
settle()
return {status, from, ep, NOW, '', owed, inc}
