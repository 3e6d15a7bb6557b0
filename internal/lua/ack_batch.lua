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
local mv = {META.ep, META.seq, META.f, META.rt}
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
-- A few calls per batch, not a few per client: a gateway's batch of a
-- hundred acks costs about what one ack does.
local clients = {}
for i = 8, #ARGV do clients[#clients + 1] = ARGV[i] end
-- Membership: a batch covering a good part of the room reads the member
-- set once (a ZMSCORE looks each client up in the set, linearly while the
-- set is a small listpack, and formats every score as a double).
local member = {}
if #clients * 4 >= redis.call('ZCARD', KEYS[K_MEM]) then
  for _, m in ipairs(redis.call('ZRANGE', KEYS[K_MEM], 0, -1)) do member[m] = true end
elseif #clients > 0 then
  local scores = redis.call('ZMSCORE', KEYS[K_MEM], unpack(clients))
  for i, c in ipairs(clients) do
    if scores[i] then member[c] = true end
  end
end
local statuses, fresh = {}, {}
for i, c in ipairs(clients) do
  local status
  if not member[c] then
    status = 'NOT_MEMBER'
    if redis.call('ZSCORE', KEYS[K_OBS], c) then status = 'OBSERVER' end
  elseif forged then
    status = 'FORGED'
  elseif inflight ~= seq then
    status = 'STALE'
  else
    fresh[#fresh + 1] = c
    status = 'OK'
  end
  statuses[i] = status
end
if #fresh > 0 then
  -- As HSETNX per client: a repeated ack keeps the time of the first.
  local had = redis.call('HMGET', KEYS[K_ACK], unpack(fresh))
  local set = {'HSET', KEYS[K_ACK]}
  -- Formatted once: Redis turns each Lua number argument into text with
  -- a slow printf.
  local now = string.format('%d', NOW)
  for i, c in ipairs(fresh) do
    if not had[i] then
      set[#set + 1] = c
      set[#set + 1] = now
    end
  end
  if #set > 2 then redis.call(unpack(set)) end
end
local n, last = settle()
local res = {'OK', n, last or false, NOW, mv[4] or false, PREV or false, APPENDED, COMPLETED and 1 or 0}
for i = 1, #statuses do res[#res + 1] = statuses[i] end
return res
