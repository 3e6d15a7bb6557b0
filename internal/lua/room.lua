-- room.lua: shared prelude of every room script that changes state. It is
-- inserted after the first line of each script that says
-- "-- include: room.lua", so each script stays one atomic call.
--
-- KEYS (the same for every room script; see internal/keys):
--   1 meta    HASH   seq, pend, ep, hold, f (in-flight seq), fs (its stream ID),
--                    rt (its release time), ad (ack deadline), lc (last completion)
--   2 mem     ZSET   voting member -> heartbeat deadline (server ms)
--   3 seen    HASH   member or observer -> last heartbeat (server ms)
--   4 ack     HASH   member -> ack time of the in-flight message (0: joined after release)
--   5 obs     ZSET   observer -> heartbeat deadline
--   6 stream  STREAM delivery events
--   7 rooms   ZSET   shard index: room -> backlog
--   8 due     ZSET   shard index: room -> earliest deadline
--   9 stats   HASH   shard totals: backlog, members, observers
--  10..19     LIST   pending messages of priority 0..9
-- ARGV (common part):
--   1 room name, 2 stream MAXLEN (0: none), 3 stream max age ms (0: none),
--   4 ack timeout ms (0: none), 5 hold messages while the room is empty (1/0)
-- Stream events: t = m (message), o (out-of-band), j (join), l (leave),
--   e (evict); id, p (producer), pr (priority), et (enqueue ms), d (payload),
--   c (client), r (reason), o (role: m member, o observer).
local K_META, K_MEM, K_SEEN, K_ACK, K_OBS, K_STREAM = 1, 2, 3, 4, 5, 6
local K_ROOMS, K_DUE, K_STATS, K_Q0 = 7, 8, 9, 10
local LEVELS = 10
-- Releasing a backlog into a room without members is done in batches so one
-- call never blocks Redis for long; housekeeping picks up the rest.
local DRAIN_BATCH = 1000

local ROOM = ARGV[1]
local MAXLEN = tonumber(ARGV[2])
local MAXAGE = tonumber(ARGV[3])
local ACKTIMEOUT = tonumber(ARGV[4])

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local NOW = now_ms()

local function epoch()
  local ep = redis.call('HGET', KEYS[K_META], 'ep')
  if not ep then
    local t = redis.call('TIME')
    ep = t[1] .. string.format('%06d', tonumber(t[2]))
    redis.call('HSET', KEYS[K_META], 'ep', ep)
  end
  return ep
end

-- Scripts that set TRACK return what they appended (APPENDED) and the
-- stream's last ID before it (PREV), so the caller's process can hand the
-- entries to its local subscribers without waiting for its XREAD: a
-- subscriber whose position is PREV misses nothing by taking them.
local TRACK = false
local PREV = nil
local APPENDED = {}

local function append(fields)
  if TRACK and not PREV then
    local last = redis.call('XREVRANGE', KEYS[K_STREAM], '+', '-', 'COUNT', 1)
    PREV = last[1] and last[1][1] or '0-0'
  end
  local args = {'XADD', KEYS[K_STREAM]}
  if MAXLEN > 0 then
    args[#args + 1] = 'MAXLEN'
    args[#args + 1] = '~'
    args[#args + 1] = MAXLEN
  end
  args[#args + 1] = '*'
  for i = 1, #fields do args[#args + 1] = fields[i] end
  local id = redis.call(unpack(args))
  if TRACK then APPENDED[#APPENDED + 1] = {id, fields} end
  if MAXAGE > 0 then
    redis.call('XTRIM', KEYS[K_STREAM], 'MINID', '~', string.format('%d', NOW - MAXAGE))
  end
  return id
end

-- drop removes a member or observer and records why; nil if it was neither.
local function drop(c, ev, reason)
  local role
  if redis.call('ZREM', KEYS[K_MEM], c) == 1 then
    redis.call('HDEL', KEYS[K_ACK], c)
    redis.call('HINCRBY', KEYS[K_STATS], 'members', -1)
    role = 'm'
  elseif redis.call('ZREM', KEYS[K_OBS], c) == 1 then
    redis.call('HINCRBY', KEYS[K_STATS], 'observers', -1)
    role = 'o'
  else
    return nil
  end
  redis.call('HDEL', KEYS[K_SEEN], c)
  append({'t', ev, 'c', c, 'r', reason, 'o', role})
  return role
end

-- reap evicts members whose heartbeat deadline passed and, when the ack
-- deadline of the in-flight message passed, the members that did not ack it.
local function reap()
  local n = 0
  for _, c in ipairs(redis.call('ZRANGEBYSCORE', KEYS[K_MEM], '-inf', NOW)) do
    drop(c, 'e', 'timeout')
    n = n + 1
  end
  for _, c in ipairs(redis.call('ZRANGEBYSCORE', KEYS[K_OBS], '-inf', NOW)) do
    drop(c, 'e', 'timeout')
    n = n + 1
  end
  local ad = tonumber(redis.call('HGET', KEYS[K_META], 'ad') or '0')
  if ad > 0 and ad <= NOW then
    for _, c in ipairs(redis.call('ZRANGE', KEYS[K_MEM], 0, -1)) do
      if redis.call('HEXISTS', KEYS[K_ACK], c) == 0 then
        drop(c, 'e', 'ack-timeout')
        n = n + 1
      end
    end
    redis.call('HDEL', KEYS[K_META], 'ad')
  end
  return n
end

local function pop()
  for p = 0, LEVELS - 1 do
    local m = redis.call('LPOP', KEYS[K_Q0 + p])
    if m then return m, p end
  end
  return nil
end

-- Queue entries are "<seq>:<enqueue ms>:<producer length>:<producer><payload>";
-- the length prefix lets producers contain any character.
local function release_entry(m, p)
  local seq, enq, plen, at = string.match(m, '^(%d+):(%d+):(%d+):()')
  plen = tonumber(plen)
  local producer = string.sub(m, at, at + plen - 1)
  local payload = string.sub(m, at + plen)
  local id = append({'t', 'm', 'id', seq, 'p', producer, 'pr', p, 'et', enq, 'd', payload})
  redis.call('HINCRBY', KEYS[K_META], 'pend', -1)
  redis.call('HINCRBY', KEYS[K_STATS], 'backlog', -1)
  return seq, id
end

-- release is the barrier: it completes the in-flight message once every
-- current member acked it and then releases the next pending message (all of
-- them, in batches, when nobody is there to ack). Returns how many messages
-- it released and the seq of the last one.
local function release()
  local meta = KEYS[K_META]
  local nmem = redis.call('ZCARD', KEYS[K_MEM])
  if redis.call('HEXISTS', meta, 'f') == 1 then
    if nmem > 0 and redis.call('HLEN', KEYS[K_ACK]) < nmem then return 0, nil end
    redis.call('HDEL', meta, 'f', 'fs', 'rt', 'ad')
    redis.call('HSET', meta, 'lc', NOW)
    redis.call('DEL', KEYS[K_ACK])
  end
  if tonumber(redis.call('HGET', meta, 'pend') or '0') <= 0 then return 0, nil end
  if nmem == 0 then
    if redis.call('HGET', meta, 'hold') == '1' then return 0, nil end
    local n, last = 0, nil
    while n < DRAIN_BATCH do
      local m, p = pop()
      if not m then break end
      last = release_entry(m, p)
      n = n + 1
    end
    return n, last
  end
  local m, p = pop()
  if not m then
    -- The counter drifted from the lists (manual edits): trust the lists.
    redis.call('HSET', meta, 'pend', 0)
    return 0, nil
  end
  local seq, id = release_entry(m, p)
  redis.call('HSET', meta, 'f', seq, 'fs', id, 'rt', NOW)
  if ACKTIMEOUT > 0 then redis.call('HSET', meta, 'ad', NOW + ACKTIMEOUT) end
  return 1, seq
end

-- update_index keeps the shard's room index and deadline index exact, so
-- metrics and housekeeping never scan rooms.
local function update_index()
  local meta = KEYS[K_META]
  local pend = tonumber(redis.call('HGET', meta, 'pend') or '0')
  local nmem = redis.call('ZCARD', KEYS[K_MEM])
  local nobs = redis.call('ZCARD', KEYS[K_OBS])
  if pend > 0 or nmem + nobs > 0 or redis.call('HEXISTS', meta, 'f') == 1 then
    redis.call('ZADD', KEYS[K_ROOMS], pend, ROOM)
  else
    redis.call('ZREM', KEYS[K_ROOMS], ROOM)
  end
  local d
  local m = redis.call('ZRANGE', KEYS[K_MEM], 0, 0, 'WITHSCORES')
  if m[2] then d = tonumber(m[2]) end
  local o = redis.call('ZRANGE', KEYS[K_OBS], 0, 0, 'WITHSCORES')
  if o[2] and (not d or tonumber(o[2]) < d) then d = tonumber(o[2]) end
  local ad = tonumber(redis.call('HGET', meta, 'ad') or '0')
  if ad > 0 and (not d or ad < d) then d = ad end
  if pend > 0 and nmem == 0 and redis.call('HGET', meta, 'hold') ~= '1' then
    d = NOW -- a drain batch left work behind
  end
  if d then
    redis.call('ZADD', KEYS[K_DUE], d, ROOM)
  else
    redis.call('ZREM', KEYS[K_DUE], ROOM)
  end
end

-- settle is the common tail of every state change.
local function settle()
  local n, last = release()
  update_index()
  return n, last
end
