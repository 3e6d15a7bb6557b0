#!lua
-- ack_batch.lua: record the acks of several members for the same message in
-- one step (a gateway hosting many subscribers of a room acks them together)
-- and, when they were the last ones missing, release the next message.
-- include: room.lua
-- KEYS: the room keys (room.lua).
-- ARGV: 1-5 common (room.lua); 6 epoch; 7 message seq; 8.. client IDs.
-- Returns: {status, released count, last released seq or false, now ms,
--           release time ms of the acked message or false,
--           stream ID before the appended entries or false,
--           appended entries {{id, {field, value, ...}}, ...},
--           1 if the batch completed the acked message (nobody is missing) else 0,
--           status of each client in ARGV order...}
--   status: OK, or EPOCH (tokens from before a reset: every client gets
--           EPOCH and nothing changes).
--   per-client status, as ack.lua: OK (also for a repeated ack of the
--           in-flight message), NOT_MEMBER, OBSERVER, FORGED (seq never
--           issued), STALE (not the in-flight message).
local mv = redis.call('HMGET', KEYS[K_META], 'ep', 'seq', 'f', 'rt')
if mv[1] ~= ARGV[6] then
  local res = {'EPOCH', 0, false, NOW, false, false, {}, 0}
  for i = 8, #ARGV do res[#res + 1] = 'EPOCH' end
  return res
end
TRACK = true
reap()
local seq = tonumber(ARGV[7])
local forged = seq > tonumber(mv[2] or '0')
-- reap() does not change the in-flight message, so it is read once: every
-- ack of the batch counts for the same message, and only settle() below
-- may complete it.
local inflight = tonumber(mv[3] or '-1')
local statuses = {}
for i = 8, #ARGV do
  local c = ARGV[i]
  local status
  if not redis.call('ZSCORE', KEYS[K_MEM], c) then
    status = 'NOT_MEMBER'
    if redis.call('ZSCORE', KEYS[K_OBS], c) then status = 'OBSERVER' end
  elseif forged then
    status = 'FORGED'
  elseif inflight ~= seq then
    status = 'STALE'
  else
    redis.call('HSETNX', KEYS[K_ACK], c, NOW)
    status = 'OK'
  end
  statuses[#statuses + 1] = status
end
local n, last = settle()
local res = {'OK', n, last or false, NOW, mv[4] or false, PREV or false, APPENDED, COMPLETED and 1 or 0}
for i = 1, #statuses do res[#res + 1] = statuses[i] end
return res
