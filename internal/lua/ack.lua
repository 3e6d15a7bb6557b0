#!lua
-- ack.lua: record a member's ack of the in-flight message and, when it was
-- the last one missing, release the next message in the same step.
-- include: room.lua
-- KEYS: the room keys (room.lua).
-- ARGV: 1-5 common (room.lua); 6 client ID; 7 message seq; 8 epoch;
--       9 incarnation (the membership the token was issued under).
-- Returns: {status, released count, last released seq or false, now ms,
--           release time ms of the acked message or false,
--           stream ID before the appended entries or false,
--           appended entries {{id, {field, value, ...}}, ...},
--           1 if the ack completed the acked message (nobody is missing) else 0,
--           plus 2 when the room's quorum completes messages without every
--           member (windowed barrier, room.lua)}
--   With a windowed policy (room.lua) the ack is cumulative: it acks every
--   message released before seq too, OK for any message still tracked
--   (in flight, or completed by a quorum without this member), and STALE
--   for one no longer tracked.
--   status: OK (also for a repeated ack of the in-flight message),
--           EPOCH (token from before a reset), NOT_MEMBER, OBSERVER,
--           FORGED (seq never issued), STALE (not the in-flight message),
--           REJOINED (the token is from an earlier membership of the client:
--           it left or was evicted and joined again since).
if META.ep ~= ARGV[8] then return {'EPOCH', 0, false, NOW, false} end
-- As the call found them, before reap.
local mseq, mf, rt = META.seq, META.f, META.rt
-- The common ack names the message in flight, in the text meta holds:
-- it is then neither forged (f is a released seq, never above seq) nor
-- stale, and no number is parsed (tonumber costs a strtod).
local current = not WINDOWED and mf ~= nil and ARGV[7] == mf
local seq = not current and tonumber(ARGV[7])
TRACK = true
reap()
local c = ARGV[6]
-- The incarnation hash holds exactly the current members (join writes it,
-- drop deletes it), so its HGET is the membership test too: one call where
-- a ZSCORE of the member set and a second lookup would be two. Only a
-- client without an entry is looked up in the member set, for a member
-- whose entry was lost (refused below as REJOINED, as before).
local inc = rcall('HGET', KEYS[K_INC], c)
if not inc and not rcall('ZSCORE', KEYS[K_MEM], c) then
  local status = 'NOT_MEMBER'
  if rcall('ZSCORE', KEYS[K_OBS], c) then status = 'OBSERVER' end
  local n, last = settle()
  return {status, n, last or false, NOW, false}
end
if not current and seq > tonumber(mseq or '0') then
  local n, last = settle() -- reap() above may have opened the barrier
  return {'FORGED', n, last or false, NOW, false}
end
-- Windowed barrier: any tracked message (in flight, or completed by a
-- quorum without this member) may be acked, and the ack is cumulative.
local widx, wrt
if WINDOWED then
  widx, wrt = win().find(seq)
  if not widx then
    local n, last = settle()
    return {'STALE', n, last or false, NOW, false}
  end
elseif not current then
  local inflight = tonumber(mf or '-1')
  if inflight ~= seq then
    local n, last = settle()
    return {'STALE', n, last or false, NOW, false}
  end
end
-- The membership the token was issued under must be the client's current
-- one, or an ack from before an eviction would be taken as one of the
-- client's next membership.
if inc ~= ARGV[9] then
  local n, last = settle()
  return {'REJOINED', n, last or false, NOW, false}
end
if widx then
  rt = wrt
  win().ack(c, widx)
  local cn0 = win().load().cn
  local n, last = settle()
  return {'OK', n, last or false, NOW, rt or false, PREV or false, APPENDED, win().done(widx > cn0 and widx <= WS.cn)}
end
-- The counts come first, and the release step takes them from here
-- (NMEM, NACK). When the record is empty and this is the only member, its
-- ack completes the message: nothing is written that the release step
-- would delete at once. Otherwise HSETNX: a repeated ack keeps the time of
-- the first, and counts once.
NMEM = rcall('ZCARD', KEYS[K_MEM])
local had = rcall('HLEN', KEYS[K_ACK])
if had == 0 and NMEM <= 1 then
  ACKED_ALL, NACK = true, 0
else
  NACK = had + rcall('HSETNX', KEYS[K_ACK], c, nows())
end
local n, last = settle()
return {'OK', n, last or false, NOW, rt or false, PREV or false, APPENDED, COMPLETED and 1 or 0}
