#!lua
-- ack_batch.lua: record the acks of several members for the same message in
-- one step (a gateway hosting many subscribers of a room acks them together)
-- and, when they were the last ones missing, release the next message.
-- include: room.lua
-- KEYS: the room keys (room.lua).
-- ARGV: 1-5 common (room.lua); 6 epoch; 7 message seq; 8..7+n the n client
--       IDs; 8+n..7+2n their incarnations, in the same order (the memberships
--       their tokens were issued under).
-- Returns: {status, released count, last released seq or false, now ms,
--           release time ms of the acked message or false,
--           stream ID before the appended entries or false,
--           appended entries {{id, {field, value, ...}}, ...},
--           1 if the batch completed the acked message (nobody is missing) else 0,
--           plus 2 when the room's quorum completes messages without every
--           member (windowed barrier, room.lua),
--           then, for each client whose status is not OK, its position in
--           ARGV order (1-based) and its status...}
--   status: OK, or EPOCH (tokens from before a reset: it holds for every
--           client, and nothing changes).
--   per-client status, as ack.lua: OK (also for a repeated ack of the
--           in-flight message), NOT_MEMBER, OBSERVER, FORGED (seq never
--           issued), STALE (not the in-flight message), REJOINED (a token
--           from an earlier membership of the client). Only the others
--           are listed: a reply element costs Redis more than a Lua test.
local mv = {META.ep, META.seq, META.f, META.rt}
if mv[1] ~= ARGV[6] then
  return {'EPOCH', 0, false, NOW, false, false, {}, 0}
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
-- hundred acks costs about what one ack does. The per-client work is kept
-- to a few table operations, which is most of what such a batch costs.
local nclients = math.floor((#ARGV - 7) / 2)
-- Membership: a batch covering a good part of the room reads the member
-- set once (a ZMSCORE looks each client up in the set, linearly while the
-- set is a small listpack, and formats every score as a double).
local member = {}
local nmem = rcall('ZCARD', KEYS[K_MEM])
if nclients * 4 >= nmem then
  for _, m in ipairs(rcall('ZRANGE', KEYS[K_MEM], 0, -1)) do member[m] = true end
elseif nclients > 0 then
  local scores = rcall('ZMSCORE', KEYS[K_MEM], unpack(ARGV, 8, 7 + nclients))
  for i = 1, nclients do
    if scores[i] then member[ARGV[7 + i]] = true end
  end
end
-- refused lists (position, status) of the clients whose ack is not taken;
-- fresh the others, once each (member[c] turns false once c is counted).
local refused, fresh = {}, {}
local batchStatus = nil
local widx, wrt -- windowed barrier: the acked message's number (room.lua)
if forged then
  batchStatus = 'FORGED'
elseif WINDOWED then
  widx, wrt = win().find(seq)
  if not widx then batchStatus = 'STALE' end
elseif inflight ~= seq then
  batchStatus = 'STALE'
end
-- The incarnations, one HMGET for the batch: each token must be from its
-- client's current membership (see ack.lua).
local incs = {}
if not batchStatus and nclients > 0 and next(member) ~= nil then
  incs = rcall('HMGET', KEYS[K_INC], unpack(ARGV, 8, 7 + nclients))
end
for i = 1, nclients do
  local c = ARGV[7 + i]
  local m = member[c]
  if m == nil then
    local status = 'NOT_MEMBER'
    if rcall('ZSCORE', KEYS[K_OBS], c) then status = 'OBSERVER' end
    refused[#refused + 1] = i
    refused[#refused + 1] = status
  elseif batchStatus then
    refused[#refused + 1] = i
    refused[#refused + 1] = batchStatus
  elseif incs[i] ~= ARGV[7 + nclients + i] then
    refused[#refused + 1] = i
    refused[#refused + 1] = 'REJOINED'
  elseif m then
    member[c] = false
    fresh[#fresh + 1] = c
  end
end
if widx then
  -- Cumulative: only positions below the acked message move.
  if #fresh > 0 then
    local had = rcall('HMGET', KEYS[K_ACK], unpack(fresh))
    local set = {'HSET', KEYS[K_ACK]}
    local v = win().fmt(widx, NOW)
    for i, c in ipairs(fresh) do
      if win().pos(had[i]) < widx then
        set[#set + 1] = c
        set[#set + 1] = v
      end
    end
    if #set > 2 then rcall(unpack(set)) end
  end
  local cn0 = win().load().cn
  local n, last = settle()
  local res = {'OK', n, last or false, NOW, wrt or false, PREV or false, APPENDED, win().done(widx > cn0 and widx <= WS.cn)}
  for i = 1, #refused do res[#res + 1] = refused[i] end
  return res
end
if #fresh > 0 then
  -- As HSETNX per client: a repeated ack keeps the time of the first. The
  -- common batch is the first acks of the message, into an empty record.
  local nack = rcall('HLEN', KEYS[K_ACK])
  local new = fresh
  if nack > 0 then
    local had = rcall('HMGET', KEYS[K_ACK], unpack(fresh))
    new = {}
    for i, c in ipairs(fresh) do
      if not had[i] then new[#new + 1] = c end
    end
  end
  -- The release step takes the counts from here (room.lua: NMEM, NACK).
  NMEM, NACK = nmem, nack + #new
  if nack + #new >= nmem then
    -- The record holds only members' acks, so the batch completes the
    -- message, and settle() deletes the record in this same step: writing
    -- a hundred fields to delete them would be most of the call's cost.
    -- Nothing to delete when nothing was recorded before the batch.
    ACKED_ALL, NACK = true, nack
  elseif #new > 0 then
    local set = {'HSET', KEYS[K_ACK]}
    -- Formatted once: Redis turns each Lua number argument into text with
    -- a slow printf.
    local now = string.format('%d', NOW)
    for _, c in ipairs(new) do
      set[#set + 1] = c
      set[#set + 1] = now
    end
    rcall(unpack(set))
  end
end
local n, last = settle()
local res = {'OK', n, last or false, NOW, mv[4] or false, PREV or false, APPENDED, COMPLETED and 1 or 0}
for i = 1, #refused do res[#res + 1] = refused[i] end
return res
