-- room.lua: shared prelude of every room script that changes state. It is
-- inserted after the first line of each script that says
-- "-- include: room.lua", so each script stays one atomic call.
--
-- KEYS (the same for every room script; see internal/keys):
--   1 meta    HASH   seq, pend, ep, hold, f (in-flight seq), fs (its stream ID),
--                    rt (its release time), ad (ack deadline), lc (last completion),
--                    pz (paused since, ms; absent when not paused), pb (paused
--                    by: the actor), pr (the pause's reason); see admin_*.lua
--   2 mem     ZSET   voting member -> heartbeat deadline (server ms)
--   3 seen    HASH   member or observer -> last heartbeat (server ms)
--   4 ack     HASH   member -> ack time of the in-flight message (0: joined after release)
--   5 obs     ZSET   observer -> heartbeat deadline
--   6 stream  STREAM delivery events
--   7 rooms   ZSET   shard index: room -> backlog; an idle room (no members,
--                    observers, backlog or message in flight) that keeps its
--                    history: -(its expiry, ms), IDLE_FOREVER when kept forever
--   8 due     ZSET   shard index: room -> earliest deadline (heartbeat, ack,
--                    drain; for an idle room: its expiry or next stream trim)
--   9 stats   HASH   shard totals: backlog, members, observers, malformed
--                    (entries set aside), expired (rooms)
--  10..19     LIST   pending messages of priority 0..9
--  20 inc     HASH   member -> incarnation: the stream ID of the join that made
--                    it a member; ack tokens carry it, so a token issued before
--                    the member left or was evicted does not count after it
--                    joined again with the same client ID
-- ARGV (common part):
--   1 room name, 2 stream MAXLEN (0: none), 3 stream max age ms (0: none),
--   4 ack timeout ms (0: none), 5 "<hold>:<idle ttl>": hold messages while the
--   room is empty (1/0), then how long a room stays idle before it is deleted
--   with its history (ms; negative: never). Both share one argument so that
--   every script's own arguments keep their positions.
-- Stream events: t = m (message), o (out-of-band), j (join), l (leave),
--   e (evict), x (malformed pending entry set aside); id, p (producer),
--   pr (priority), et (enqueue ms), d (payload), c (client), r (reason),
--   o (role: m member, o observer), n (length of a malformed entry).
-- Admin events (admin_*.lua), each with a (actor) and r (reason): P (pause),
--   R (resume), U (purge: n dropped, pr level if one, id up-to if one),
--   F (force release: id, ms the members that had not acked, "\n"-joined),
--   K (kick: c, o), D (room deleted).
local K_META, K_MEM, K_SEEN, K_ACK, K_OBS, K_STREAM = 1, 2, 3, 4, 5, 6
local K_ROOMS, K_DUE, K_STATS, K_Q0, K_INC = 7, 8, 9, 10, 20
local LEVELS = 10
-- Releasing a backlog into a room without members is done in batches so one
-- call never blocks Redis for long; housekeeping picks up the rest.
local DRAIN_BATCH = 1000

local ROOM = ARGV[1]
local MAXLEN = tonumber(ARGV[2])
local MAXAGE = tonumber(ARGV[3])
local ACKTIMEOUT = tonumber(ARGV[4])
local HOLD = string.sub(ARGV[5], 1, 1)

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local NOW = now_ms()

-- META holds the room's meta hash, read once per call: every script needs
-- some of it and a Redis call costs more from Lua than its reply's size.
-- Changes go through mset and are written by flush_meta in at most two
-- calls (HSET and HDEL) at the end of the script.
local META = {}
do
  -- pz (paused) rides along: one more field of a read every call makes,
  -- so the release step's paused check costs no call.
  local names = {'ep', 'seq', 'f', 'fs', 'rt', 'pend', 'hold', 'ad', 'pz'}
  local mv = redis.call('HMGET', KEYS[K_META], unpack(names))
  for i, k in ipairs(names) do
    if mv[i] then META[k] = mv[i] end
  end
end
local META_DIRTY = {}
-- mset changes a meta field (v false: delete it) in META and for flush_meta.
local function mset(k, v)
  if v == false then META[k] = nil else META[k] = v end
  META_DIRTY[k] = v
end
local function flush_meta()
  local set, del = {'HSET', KEYS[K_META]}, {'HDEL', KEYS[K_META]}
  for k, v in pairs(META_DIRTY) do
    if v == false then
      del[#del + 1] = k
    else
      set[#set + 1] = k
      set[#set + 1] = v
    end
  end
  if #set > 2 then redis.call(unpack(set)) end
  if #del > 2 then redis.call(unpack(del)) end
  META_DIRTY = {}
end

-- DEADLINES says this call changed a heartbeat deadline or the ack
-- deadline, so update_index must recompute the room's earliest deadline;
-- otherwise the one in the due index (DUE, read by reap) still holds.
local DEADLINES = false
local DUE = nil
-- MEMBERS says this call added or removed a member or observer; with PEND0
-- (the backlog before the call) it tells update_index whether the room's
-- entry in the shard's room index can have changed.
local MEMBERS = false
local PEND0 = tonumber(META.pend or '0')

local function epoch()
  local ep = META.ep
  if not ep then
    local t = redis.call('TIME')
    ep = t[1] .. string.format('%06d', tonumber(t[2]))
    mset('ep', ep)
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
-- COMPLETED says whether this call's release step completed the in-flight
-- message (its last missing ack arrived, or the last missing member left).
local COMPLETED = false
-- ACKED_ALL, set by a script that counted every member's ack itself, lets
-- release complete the in-flight message without reading the ack record.
local ACKED_ALL = false

-- LAST is the stream's newest ID before the next append of this call.
local LAST = nil
-- APPENDS counts this call's appends: new history, which an idle room's
-- expiry is measured from.
local APPENDS = 0

-- append adds an event to the room's stream and publishes it, with the ID
-- it follows, on the shard channel named like the stream key (same hash
-- tag, so the same slot): readers wait on these notifications instead of
-- naming every followed stream in a blocking XREAD, and read the stream
-- when a notification does not follow what they read last.
local function append(fields)
  if not LAST then
    local last = redis.call('XREVRANGE', KEYS[K_STREAM], '+', '-', 'COUNT', 1)
    LAST = last[1] and last[1][1] or '0-0'
  end
  if TRACK and not PREV then PREV = LAST end
  local args = {'XADD', KEYS[K_STREAM]}
  if MAXLEN > 0 then
    args[#args + 1] = 'MAXLEN'
    args[#args + 1] = '~'
    args[#args + 1] = MAXLEN
  end
  args[#args + 1] = '*'
  for i = 1, #fields do args[#args + 1] = fields[i] end
  local id = redis.call(unpack(args))
  redis.call('SPUBLISH', KEYS[K_STREAM], cmsgpack.pack(LAST, id, fields))
  LAST = id
  APPENDS = APPENDS + 1
  if TRACK then APPENDED[#APPENDED + 1] = {id, fields} end
  if MAXAGE > 0 then
    redis.call('XTRIM', KEYS[K_STREAM], 'MINID', '~', string.format('%d', NOW - MAXAGE))
  end
  return id
end

-- drop removes a member or observer and records why (and who, for an
-- admin's kick); nil if it was neither.
local function drop(c, ev, reason, actor)
  local role
  if redis.call('ZREM', KEYS[K_MEM], c) == 1 then
    redis.call('HDEL', KEYS[K_ACK], c)
    redis.call('HDEL', KEYS[K_INC], c)
    redis.call('HINCRBY', KEYS[K_STATS], 'members', -1)
    role = 'm'
  elseif redis.call('ZREM', KEYS[K_OBS], c) == 1 then
    redis.call('HINCRBY', KEYS[K_STATS], 'observers', -1)
    role = 'o'
  else
    return nil
  end
  DEADLINES, MEMBERS = true, true
  redis.call('HDEL', KEYS[K_SEEN], c)
  local fields = {'t', ev, 'c', c, 'r', reason, 'o', role}
  if actor then
    fields[#fields + 1] = 'a'
    fields[#fields + 1] = actor
  end
  append(fields)
  return role
end

-- reap evicts members whose heartbeat deadline passed and, when the ack
-- deadline of the in-flight message passed, the members that did not ack it.
-- The due index holds the room's earliest deadline (update_index keeps it
-- exact), so a room with nothing expired costs one ZSCORE here.
local function reap()
  local due = redis.call('ZSCORE', KEYS[K_DUE], ROOM)
  if not due then
    DUE = false
    return 0
  end
  DUE = tonumber(due)
  if DUE > NOW then return 0 end
  DEADLINES = true
  local n = 0
  for _, c in ipairs(redis.call('ZRANGEBYSCORE', KEYS[K_MEM], '-inf', NOW)) do
    drop(c, 'e', 'timeout')
    n = n + 1
  end
  for _, c in ipairs(redis.call('ZRANGEBYSCORE', KEYS[K_OBS], '-inf', NOW)) do
    drop(c, 'e', 'timeout')
    n = n + 1
  end
  local ad = tonumber(META.ad or '0')
  if ad > 0 and ad <= NOW then
    for _, c in ipairs(redis.call('ZRANGE', KEYS[K_MEM], 0, -1)) do
      if redis.call('HEXISTS', KEYS[K_ACK], c) == 0 then
        drop(c, 'e', 'ack-timeout')
        n = n + 1
      end
    end
    mset('ad', false)
    DEADLINES = true
  end
  return n
end

-- LMPOP over the ten priority lists pops from the first non-empty one, so
-- finding the next message is one call whatever the priorities in use.
local QIDX = {}
for p = 0, LEVELS - 1 do QIDX[KEYS[K_Q0 + p]] = p end
local function pop(count)
  local args = {'LMPOP', LEVELS}
  for p = 0, LEVELS - 1 do args[#args + 1] = KEYS[K_Q0 + p] end
  args[#args + 1] = 'LEFT'
  args[#args + 1] = 'COUNT'
  args[#args + 1] = count
  local r = redis.call(unpack(args))
  if not r then return nil end
  return r[2], QIDX[r[1]]
end

-- Queue entries are "<seq>:<enqueue ms>:<producer length>:<producer><payload>";
-- the length prefix lets producers contain any character, and the payload
-- starts with a kind byte ('r' or 'm', or 'h' for a header block followed
-- by one of them: see internal/payload).
-- An entry not in that form (written by something else than send.lua) is
-- never released: no reader could decode it, so no member would ack it and
-- the room would wait for ever. It is recorded as a "malformed" event
-- instead (t x, r header|payload, pr, n its length, d its first 64 bytes,
-- id when the header was readable) and counted, and release goes on with
-- the next entry. The checks mirror barrier.ParseEntry and streams.Decode
-- (message ID and enqueue time positive, no leading zero, within a uint64
-- and an int64), and cost a pattern match and a byte read per release.
-- Returns nil for such an entry: never an error halfway through a script,
-- since Redis does not roll back a script's earlier writes.
local KIND_RAW, KIND_MSGPACK = string.byte('r'), string.byte('m')
-- A payload with headers starts "h<block length>:", then the block of
-- "<key length>:<key><value length>:<value>" pairs, then a payload of kind
-- r or m. header_block checks one at position i the way
-- internal/payload.Parse does: lengths of 1..5 digits without a leading
-- zero, a block of 1..65535 bytes, fields within it, keys non-empty and
-- distinct. Messages without headers never reach it.
local function hlen(m, i, stop)
  local d, j = string.match(m, '^(%d+):()', i)
  if not d or #d > 5 or (#d > 1 and string.byte(d) == 48) or j > stop then return nil end
  return tonumber(d), j
end
local function header_block(m, i)
  if string.byte(m, i) ~= 104 then return false end -- 'h'
  local n, at = hlen(m, i + 1, #m)
  if not n or n == 0 or n > 65535 then return false end
  local stop = at + n
  local kind = string.byte(m, stop)
  if kind ~= KIND_RAW and kind ~= KIND_MSGPACK then return false end
  local seen = {}
  while at < stop do
    local kl, k = hlen(m, at, stop)
    if not kl or kl == 0 or k + kl > stop then return false end
    local key = string.sub(m, k, k + kl - 1)
    if seen[key] then return false end
    seen[key] = true
    local vl, v = hlen(m, k + kl, stop)
    if not vl or v + vl > stop then return false end
    at = v + vl
  end
  return true
end
local function release_entry(m, p)
  local seq, enq, plen, at = string.match(m, '^([1-9]%d*):([1-9]%d*):(%d+):()')
  local why
  if not seq or #seq > 19 or #enq > 15 then
    seq, why = nil, 'header'
  else
    plen = tonumber(plen)
    if at + plen - 1 > #m then
      seq, why = nil, 'header'
    else
      local kind = string.byte(m, at + plen)
      if kind ~= KIND_RAW and kind ~= KIND_MSGPACK and not header_block(m, at + plen) then why = 'payload' end
    end
  end
  if why then
    local ev = {'t', 'x', 'r', why, 'pr', p, 'n', #m, 'd', string.sub(m, 1, 64)}
    if seq then
      ev[#ev + 1] = 'id'
      ev[#ev + 1] = seq
    end
    append(ev)
    return nil
  end
  local producer = string.sub(m, at, at + plen - 1)
  local payload = string.sub(m, at + plen)
  local id = append({'t', 'm', 'id', seq, 'p', producer, 'pr', p, 'et', enq, 'd', payload})
  return seq, id
end

-- release is the barrier: it completes the in-flight message once every
-- current member acked it and then releases the next pending message (all of
-- them, in batches, when nobody is there to ack). Returns how many messages
-- it released, the seq of the last one, and the room's resulting state for
-- update_index (read once here, to keep the calls per script low).
local function release()
  local st = {
    inflight = META.f and true or false,
    pend = META.pend and tonumber(META.pend) or 0,
    hold = META.hold == '1',
    ad = META.ad and tonumber(META.ad) or 0,
    nmem = redis.call('ZCARD', KEYS[K_MEM]),
    -- A paused room completes its in-flight message but releases nothing
    -- new (admin_pause.lua).
    paused = META.pz ~= nil,
  }
  if st.inflight then
    if st.nmem > 0 and not ACKED_ALL and redis.call('HLEN', KEYS[K_ACK]) < st.nmem then return 0, nil, st end
    mset('f', false)
    mset('fs', false)
    mset('rt', false)
    if st.ad > 0 then
      mset('ad', false)
      DEADLINES = true
    end
    redis.call('DEL', KEYS[K_ACK])
    st.inflight, st.ad = false, 0
    COMPLETED = true
    mset('lc', NOW)
  end
  local n, last = 0, nil
  if st.pend > 0 and not (st.nmem == 0 and st.hold) and not st.paused then
    local want = 1
    if st.nmem == 0 then want = DRAIN_BATCH end
    local bad = 0
    -- Malformed entries are bounded per call like a drain batch; with
    -- members, what remains is set aside by the room's next state change
    -- (a heartbeat at the latest).
    while n < want and bad < DRAIN_BATCH do
      local ms, p = pop(want - n)
      if not ms then
        -- The counter drifted from the lists (manual edits): trust the lists.
        st.pend = n
        break
      end
      for _, m in ipairs(ms) do
        local seq, id = release_entry(m, p)
        if not seq then
          bad = bad + 1
        else
          last = seq
          n = n + 1
          if st.nmem > 0 then
            mset('f', seq)
            mset('fs', id)
            mset('rt', NOW)
            st.inflight = true
            if ACKTIMEOUT > 0 then
              st.ad = NOW + ACKTIMEOUT
              mset('ad', st.ad)
              DEADLINES = true
            end
          end
        end
      end
    end
    -- Foreign entries were never counted in pend: only released ones are.
    st.pend = math.max(st.pend - n, 0)
    mset('pend', st.pend)
    if n > 0 then redis.call('HINCRBY', KEYS[K_STATS], 'backlog', -n) end
    if bad > 0 then redis.call('HINCRBY', KEYS[K_STATS], 'malformed', bad) end
  end
  return n, last, st
end

-- IDLE_FOREVER is the room index score of an idle room kept forever
-- (IDLETTL negative); other idle rooms score -(expiry ms), far below it.
local IDLE_FOREVER = -1
-- EXPIRED says this call deleted the room: it had been idle for IDLETTL.
local EXPIRED = false

local function id_ms(id)
  return tonumber(string.match(id, '^(%d+)'))
end

-- expire_room deletes every key of the room and its index entries. Nothing
-- may be written back: flush_meta finds nothing to do.
local function expire_room()
  local del = {'DEL'}
  for i = K_META, K_STREAM do del[#del + 1] = KEYS[i] end
  for p = 0, LEVELS - 1 do del[#del + 1] = KEYS[K_Q0 + p] end
  -- An idle room has no members, so its incarnation hash is already gone;
  -- named anyway so a key added later to a room cannot outlive it.
  del[#del + 1] = KEYS[K_INC]
  redis.call(unpack(del))
  redis.call('ZREM', KEYS[K_ROOMS], ROOM)
  redis.call('ZREM', KEYS[K_DUE], ROOM)
  redis.call('HINCRBY', KEYS[K_STATS], 'expired', 1)
  META_DIRTY = {}
  EXPIRED = true
end

-- index_idle keeps the index entries of an idle room: one with nothing but
-- its history (and its seq and epoch). Such a room stays listed in the room
-- index, scored -(its expiry), and its next deadline in the due index is
-- whichever comes first of its expiry and the moment its oldest event
-- passes StreamMaxAge (streams are otherwise trimmed only on append). Work
-- happens on the transition to idle and when the deadline comes, in this
-- room's own script, so a join or send that runs first wins: a join makes
-- the room live again, a send's event is newer than the expiry allows.
-- A send into a room already idle costs one ZSCORE here: its expiry is not
-- moved now but re-measured from the newest event when it comes.
local function index_idle()
  if not META.ep then
    -- Never used, or expired already: nothing to keep or list.
    redis.call('ZREM', KEYS[K_ROOMS], ROOM)
    if DUE ~= false then redis.call('ZREM', KEYS[K_DUE], ROOM) end
    return
  end
  -- Read here only: live rooms, the per-message path, never need it.
  local IDLETTL = tonumber(string.match(ARGV[5], ':(%-?%d+)$') or '-1')
  local s = tonumber(redis.call('ZSCORE', KEYS[K_ROOMS], ROOM) or '0')
  local expiry -- nil: kept forever
  if s < 0 then
    if APPENDS > 0 then
      -- The new events age out at NOW + MAXAGE; any older one earlier, so
      -- a later deadline means the stream had aged out to nothing.
      local trim = NOW + MAXAGE + 1
      if MAXAGE > 0 and (DUE == false or DUE > trim) then
        redis.call('ZADD', KEYS[K_DUE], trim, ROOM)
      end
      return
    end
    if DUE == false or DUE == nil or DUE > NOW then return end
    if IDLETTL > 0 then
      expiry = NOW + IDLETTL -- it was kept forever until now
      if s ~= IDLE_FOREVER then expiry = -s end
      if expiry <= NOW then
        local last = redis.call('XREVRANGE', KEYS[K_STREAM], '+', '-', 'COUNT', 1)[1]
        if last then expiry = math.max(expiry, id_ms(last[1]) + IDLETTL) end
        if expiry <= NOW then
          expire_room()
          return
        end
      end
    end
  elseif IDLETTL > 0 then
    -- It was live until this call (or is new).
    expiry = NOW + IDLETTL
  end
  local trim
  if MAXAGE > 0 then
    -- Exact, unlike the append's: nothing else will trim this stream.
    redis.call('XTRIM', KEYS[K_STREAM], 'MINID', string.format('%d', NOW - MAXAGE))
    local first = redis.call('XRANGE', KEYS[K_STREAM], '-', '+', 'COUNT', 1)[1]
    if first then
      -- At most about ten trims per StreamMaxAge, so events outlive it by
      -- a tenth at most (plus a housekeeping interval).
      trim = math.max(id_ms(first[1]) + MAXAGE + 1, NOW + math.floor(MAXAGE / 10))
    end
  end
  local score = IDLE_FOREVER
  if expiry then score = -expiry end
  if score ~= s then redis.call('ZADD', KEYS[K_ROOMS], score, ROOM) end
  local d = expiry
  if trim and (not d or trim < d) then d = trim end
  if d then
    if d ~= DUE then redis.call('ZADD', KEYS[K_DUE], d, ROOM) end
  elseif DUE ~= false then
    redis.call('ZREM', KEYS[K_DUE], ROOM)
  end
end

-- update_index keeps the shard's room index and deadline index exact, so
-- metrics and housekeeping never scan rooms.
local function update_index(st)
  local nobs
  if st.nmem > 0 and not MEMBERS and st.pend == PEND0 then
    -- Unchanged since the call that last wrote it.
  elseif st.pend > 0 or st.nmem > 0 or st.inflight or st.paused then
    -- A paused room is never idle, so it never expires with its pause.
    redis.call('ZADD', KEYS[K_ROOMS], st.pend, ROOM)
  else
    nobs = redis.call('ZCARD', KEYS[K_OBS])
    if nobs > 0 then
      redis.call('ZADD', KEYS[K_ROOMS], st.pend, ROOM)
    else
      return index_idle()
    end
  end
  -- The earliest deadline only moves when a deadline changed, or when a
  -- room without members may have been left with a drain batch to do.
  -- DUE is nil when reap did not run (it read no index).
  if not DEADLINES and DUE ~= nil and st.nmem > 0 then return end
  local d
  if st.nmem > 0 then
    d = tonumber(redis.call('ZRANGE', KEYS[K_MEM], 0, 0, 'WITHSCORES')[2])
  end
  if nobs == nil or nobs > 0 then
    local o = redis.call('ZRANGE', KEYS[K_OBS], 0, 0, 'WITHSCORES')[2]
    if o then
      o = tonumber(o)
      if not d or o < d then d = o end
    end
  end
  if st.ad > 0 and (not d or st.ad < d) then d = st.ad end
  if st.pend > 0 and st.nmem == 0 and not st.hold and not st.paused then
    d = NOW -- a drain batch left work behind
  end
  if d then
    if d ~= DUE then redis.call('ZADD', KEYS[K_DUE], d, ROOM) end
  elseif DUE ~= false then
    redis.call('ZREM', KEYS[K_DUE], ROOM)
  end
end

-- settle is the common tail of every state change.
local function settle()
  local n, last, st = release()
  update_index(st)
  flush_meta()
  return n, last
end
