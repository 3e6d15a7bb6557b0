#!lua
-- send.lua: enqueue one or more messages (a batch keeps its order and gets
-- consecutive seqs) and release the first at once if the barrier is open.
-- The room's policy limits it first (send_refusal, overflow below).
-- include: room.lua
-- KEYS: the room keys (room.lua).
-- ARGV: 1-5 common (room.lua); 6 priority 0..9, then ":<ms>" when the
--       messages have their own ack timeout (AckDeadline); 7 producer;
--       8.. payloads.
-- Returns: {"OK", seq of the first message, epoch, released count,
--           last released seq or false, now ms,
--           stream ID before the appended entries or false,
--           appended entries {{id, {field, value, ...}}, ...},
--           messages dropped by the overflow policy}
--   or {"ROOM_FULL", MaxPending, pending count} (overflow reject),
--   or {"TOO_LARGE", index of the payload (0-based), its size, limit};
--   both write nothing.

-- send_refusal applies the room's MaxPayloadBytes, and its MaxPending when
-- its overflow policy is reject (a batch is refused whole), before
-- anything is written. The limit counts the backlog with the new messages,
-- before this call releases any.
local function send_refusal(count)
  if POLICY_ZERO then return nil end
  local r = payload_refusal(8)
  if r then return r end
  local p = policy()
  local pend = tonumber(META.pend or '0')
  if p.maxpending > 0 and p.overflow == 'reject' and pend + count > p.maxpending then
    return {'ROOM_FULL', p.maxpending, pend}
  end
  return nil
end

-- drop_entry removes a pending entry popped from priority list p by the
-- overflow policy, recording it as a drop event; returns 1 if it was a
-- message counted in the backlog (entries written by something else than
-- this script never were).
local function drop_entry(m, p, why)
  local seq, enq, plen, at = string.match(m, '^([1-9]%d*):([1-9]%d*):(%d+):()')
  local ev = {'t', 'd', 'pr', p, 'r', why}
  if not seq then
    ev[#ev + 1] = 'n'
    ev[#ev + 1] = #m
  else
    plen = tonumber(plen)
    ev[#ev + 1] = 'id'
    ev[#ev + 1] = seq
    ev[#ev + 1] = 'et'
    ev[#ev + 1] = enq
    ev[#ev + 1] = 'p'
    ev[#ev + 1] = string.sub(m, at, at + plen - 1)
    ev[#ev + 1] = 'n'
    ev[#ev + 1] = math.max(body_len(m, at + plen), 0)
    take_deadline(seq)
  end
  append(ev)
  if seq then return 1 end
  return 0
end

-- oldest_list returns the index of the priority list whose head has the
-- lowest seq (the longest-waiting message), or nil.
local function oldest_list()
  local best, bestseq = nil, nil
  for p = 0, LEVELS - 1 do
    local h = rcall('LINDEX', KEYS[K_Q0 + p], 0)
    local seq = h and tonumber(string.match(h, '^(%d+):'))
    if seq and (not bestseq or seq < bestseq) then best, bestseq = p, seq end
  end
  return best
end

-- overflow drops pending messages, by the room's overflow policy, until
-- the backlog is within MaxPending again, but at most DRAIN_BATCH more
-- than the call sent (count), so that one call never blocks Redis for
-- long: a backlog far above a lowered limit shrinks over the next sends.
-- Returns how many it dropped.
local function overflow(count)
  if POLICY_ZERO then return 0 end
  local p = policy()
  local pend = tonumber(META.pend or '0')
  if p.maxpending <= 0 or pend <= p.maxpending or p.overflow == 'reject' then return 0 end
  local dropped, tries = 0, 0
  -- Each try removes an entry (or stops): entries not written by this
  -- script are removed without counting.
  while pend > p.maxpending and tries < count + DRAIN_BATCH do
    tries = tries + 1
    local m, lvl
    if p.overflow == 'drop-oldest' then
      lvl = oldest_list()
      if lvl then m = rcall('LPOP', KEYS[K_Q0 + lvl]) end
    else
      for l = LEVELS - 1, 0, -1 do
        m = rcall('RPOP', KEYS[K_Q0 + l])
        if m then
          lvl = l
          break
        end
      end
    end
    if not m then break end
    local counted = drop_entry(m, lvl, p.overflow)
    pend = pend - counted
    dropped = dropped + counted
  end
  if dropped > 0 then
    mset('pend', pend)
    rcall('HINCRBY', KEYS[K_STATS], 'backlog', -dropped)
    rcall('HINCRBY', KEYS[K_STATS], 'dropped', dropped)
  end
  return dropped
end

TRACK = true
local count = #ARGV - 7
local refused = send_refusal(count)
if refused then return refused end
local ep = epoch()
local first = tonumber(META.seq or '0') + 1
-- Most sends carry no deadline: the priority alone is a number.
local prio, own = tonumber(ARGV[6]), ''
if not prio then
  prio, own = string.match(ARGV[6], '^(%d+):?(%d*)$')
  prio = tonumber(prio)
end
local producer = ARGV[7]
-- One RPUSH for the whole batch.
local push = {'RPUSH', KEYS[K_Q0 + prio]}
local tail = string.format(':%d:%d:', NOW, #producer) .. producer
for i = 1, count do
  push[#push + 1] = string.format('%d', first + i - 1) .. tail .. ARGV[7 + i]
end
rcall(unpack(push))
if own ~= '' then
  for i = 1, count do mset('d:' .. string.format('%d', first + i - 1), own) end
  mset('dn', tonumber(META.dn or '0') + count)
end
msetn('seq', first + count - 1)
msetn('pend', tonumber(META.pend or '0') + count)
BACKLOG = BACKLOG + count
ACKLESS = true
if META.hold ~= HOLD then mset('hold', HOLD) end
local dropped = overflow(count)
reap()
local n, last = settle()
return {'OK', first, ep, n, last or false, NOW, PREV or false, APPENDED, dropped}
