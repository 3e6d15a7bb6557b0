-- room.lua: shared prelude of every room script that changes state. It is
-- inserted after the first line of each script that says
-- "-- include: room.lua", so each script stays one atomic call.
--
-- KEYS (the same for every room script; see internal/keys):
--   1 meta    HASH   seq, pend, ep, hold, f (in-flight seq), fs (its stream ID),
--                    rt (its release time), ad (ack deadline), lc (last completion),
--                    pz (paused since, ms; absent when not paused), pb (paused
--                    by: the actor), pr (the pause's reason); see admin_*.lua;
--                    rn, cn, wl: the windowed barrier's state (below)
--   2 mem     ZSET   voting member -> heartbeat deadline (server ms)
--   3 seen    HASH   member or observer -> last heartbeat (server ms)
--   4 ack     HASH   member -> ack time of the in-flight message (0: joined after release);
--                    in a windowed room, every member -> "<position>:<ack ms>"
--                    (see the windowed barrier below)
--   5 obs     ZSET   observer -> heartbeat deadline
--   6 stream  STREAM delivery events
--   7 rooms   ZSET   shard index: room -> backlog; an idle room (no members,
--                    observers, backlog or message in flight) that keeps its
--                    history: -(its expiry, ms), IDLE_FOREVER when kept forever
--   8 due     ZSET   shard index: room -> earliest deadline (heartbeat, ack,
--                    drain; for an idle room: its expiry or next stream trim)
--   9 stats   HASH   shard totals: backlog, members, observers, malformed
--                    (entries set aside), expired (rooms), dropped (by
--                    overflow policies), skipped (stragglers)
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
--   every script's own arguments keep their positions; a Queue whose
--   Options.DefaultPolicy is not the zero Policy appends ";<policy>" (its
--   text form, see policy()), for rooms without a stored policy.
-- Stream events: t = m (message), o (out-of-band), j (join), l (leave),
--   e (evict), x (malformed pending entry set aside); id, p (producer),
--   pr (priority), et (enqueue ms), d (payload), c (client), r (reason),
--   o (role: m member, o observer), n (length of a malformed entry).
-- Policy events (see policy() below): t = p (policy set; v its text form),
--   d (a pending message dropped by Overflow: id, p, pr, et, n payload
--   length, r the overflow policy), s (a straggler skipped at the ack
--   deadline: id the message, c the member, r "ack-deadline").
-- Meta fields of the room's policy: p:set (a policy was stored; without it
--   the default applies), p:window, p:quorum, p:qfrac, p:maxlag,
--   p:maxpending, p:overflow, p:maxpayload, p:straggler (absent: the zero
--   value), dn (how many pending messages have a per-message ack deadline,
--   each in field d:<seq> in ms; absent: none).
-- Admin events (admin_*.lua), each with a (actor) and r (reason): P (pause),
--   R (resume), U (purge: n dropped, pr level if one, id up-to if one),
--   F (force release: id, ms the members that had not acked, "\n"-joined),
--   K (kick: c, o), D (room deleted).
-- Lua's libraries, bound to locals of the library on its first call
-- (bind): as a Redis Function library, a global is looked up in an empty
-- table and then, through its metatable, in the real globals, twice the
-- work of an upvalue, and most lines below use one. At FUNCTION LOAD no
-- global but redis's loading API exists, so they are bound in begin.
local string, math, table, cmsgpack, tonumber, unpack, ipairs, pairs, next, rcall
local function bind()
  local G = _G
  string, math, table, cmsgpack = G.string, G.math, G.table, G.cmsgpack
  tonumber, unpack, ipairs, pairs, next = G.tonumber, G.unpack, G.ipairs, G.pairs, G.next
  rcall = G.redis.call
end
local K_META, K_MEM, K_SEEN, K_ACK, K_OBS, K_STREAM = 1, 2, 3, 4, 5, 6
local K_ROOMS, K_DUE, K_STATS, K_Q0, K_INC = 7, 8, 9, 10, 20
local LEVELS = 10
-- Releasing a backlog into a room without members is done in batches so one
-- call never blocks Redis for long; housekeeping picks up the rest.
local DRAIN_BATCH = 1000

-- The state of one call (below, up to begin) is declared here and set by
-- begin at the start of every call: as a Redis Function library the
-- definitions run once, at FUNCTION LOAD, and each FCALL only runs begin.
local ROOM, MAXLEN, MAXAGE, ACKTIMEOUT, HOLD

local function now_ms()
  local t = rcall('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local NOW
-- NOWS is NOW as text, made on first use (nows): Redis formats a Lua
-- number argument with printf's %.17g, which costs twice a %d here, and a
-- release writes the time twice.
local NOWS
local function nows()
  if not NOWS then NOWS = string.format('%d', NOW) end
  return NOWS
end

-- META holds the room's meta hash, read once per call: every script needs
-- some of it and a Redis call costs more from Lua than its reply's size.
-- Changes go through mset and are written by flush_meta in at most two
-- calls (HSET and HDEL) at the end of the script.
local META
-- pz (paused) rides along: one more field of a read every call makes,
-- so the release step's paused check costs no call. p:set and rn are
-- markers only: the policy's fields (policy()) and the rest of the
-- windowed state (wload) are read when they are there, so the default
-- policy in lock-step pays for two names, not twelve. A constant: no
-- table is built per call.
local META_NAMES = {'ep', 'seq', 'f', 'fs', 'rt', 'pend', 'hold', 'ad', 'pz', 'dn', 'p:set', 'rn'}
local function read_meta()
  local mv = rcall('HMGET', KEYS[K_META], unpack(META_NAMES))
  -- One constructor, so the table is made at its size at once (each
  -- field added one by one would grow it three times); absent fields
  -- (false) stay out of it, as nil.
  META = {ep = mv[1] or nil, seq = mv[2] or nil, f = mv[3] or nil,
    fs = mv[4] or nil, rt = mv[5] or nil, pend = mv[6] or nil,
    hold = mv[7] or nil, ad = mv[8] or nil, pz = mv[9] or nil,
    dn = mv[10] or nil, ['p:set'] = mv[11] or nil, rn = mv[12] or nil}
end
local META_DIRTY
-- mset changes a meta field (v false: delete it) in META and for flush_meta.
local function mset(k, v)
  if v == false then META[k] = nil else META[k] = v end
  META_DIRTY[k] = v
end
-- msetn sets an integer field: META keeps the number for this call, the
-- write gets its text (see NOWS).
local function msetn(k, n)
  META[k] = n
  META_DIRTY[k] = string.format('%d', n)
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
  if #set > 2 then rcall(unpack(set)) end
  if #del > 2 then rcall(unpack(del)) end
  META_DIRTY = {}
end

-- POLICY_FIELDS are the names of a policy's fields, in meta ("p:" first)
-- and in its text form "name=value,...", which holds only the fields that
-- are not their zero value (Policy.String in package queue).
local POLICY_FIELDS = {'window', 'quorum', 'qfrac', 'maxlag', 'maxpending',
  'overflow', 'maxpayload', 'straggler'}
local POLICY
-- POLICY_ZERO says the room follows the zero policy (no stored policy, no
-- Queue default in ARGV[5]): the default path then skips the policy's
-- limit checks without building policy() (load_policy sets it each call).
local POLICY_ZERO
-- PFIELDS says META holds the stored policy's fields (load_pfields).
local PFIELDS
-- load_pfields reads the p: fields into META, in one call, for a room
-- with a stored policy; fields this call already changed (policy.lua)
-- keep their new value.
local function load_pfields()
  if PFIELDS then return end
  PFIELDS = true
  local names = {}
  for i, k in ipairs(POLICY_FIELDS) do names[i] = 'p:' .. k end
  local mv = rcall('HMGET', KEYS[K_META], unpack(names))
  for i, k in ipairs(names) do
    if mv[i] and META_DIRTY[k] == nil then META[k] = mv[i] end
  end
end
-- policy returns the room's policy: the stored one when p:set is there,
-- else the Queue's default from ARGV[5]; absent fields take their zero
-- value (window 1, quorum 0: every member, overflow "reject", straggler
-- "evict"). Built on first use, from what META already read: the default
-- policy costs no Redis call.
local function policy()
  if POLICY then return POLICY end
  local raw = {}
  if META['p:set'] then
    load_pfields()
    for _, k in ipairs(POLICY_FIELDS) do raw[k] = META['p:' .. k] end
  else
    local def = string.match(ARGV[5], ';(.*)$')
    if def then
      for k, v in string.gmatch(def, '([%w]+)=([^,]*)') do raw[k] = v end
    end
  end
  POLICY = {
    window = tonumber(raw.window or '1'),
    quorum = tonumber(raw.quorum or '0'),
    qfrac = tonumber(raw.qfrac or '0'),
    maxlag = tonumber(raw.maxlag or '0'),
    maxpending = tonumber(raw.maxpending or '0'),
    overflow = raw.overflow or 'reject',
    maxpayload = tonumber(raw.maxpayload or '0'),
    straggler = raw.straggler or 'evict',
  }
  return POLICY
end

-- DEADLINES says this call changed a heartbeat deadline or the ack
-- deadline, so update_index must recompute the room's earliest deadline;
-- otherwise the one in the due index (DUE, read by reap) still holds.
local DEADLINES
local DUE
-- MEMBERS says this call added or removed a member or observer; with PEND0
-- (the backlog before the call) it tells update_index whether the room's
-- entry in the shard's room index can have changed.
local MEMBERS
local PEND0

local function epoch()
  local ep = META.ep
  if not ep then
    local t = rcall('TIME')
    ep = t[1] .. string.format('%06d', tonumber(t[2]))
    mset('ep', ep)
  end
  return ep
end

-- Scripts that set TRACK return what they appended (APPENDED) and the
-- stream's last ID before it (PREV), so the caller's process can hand the
-- entries to its local subscribers without waiting for its XREAD: a
-- subscriber whose position is PREV misses nothing by taking them.
local TRACK
local PREV
local APPENDED
-- COMPLETED says whether this call's release step completed the in-flight
-- message (its last missing ack arrived, or the last missing member left).
local COMPLETED
-- ACKED_ALL, set by a script that counted every member's ack itself, lets
-- release complete the in-flight message without reading the ack record.
local ACKED_ALL
-- NMEM and NACK are the member count and the number of ack records as a
-- script that read them after its last change to either knows them (nil:
-- unknown), so that the release step does not read them again; NACK 0
-- also says there is no record to delete.
local NMEM, NACK
-- ACKLESS is set by a script that records no ack (send, heartbeat). When
-- it removed no member either, an in-flight message it found incomplete
-- is still incomplete: every call that could have completed it (an ack, a
-- member leaving) ran the release step itself. So the release step skips
-- reading the members and the acks, and knows there is at least one
-- member: a message in flight without members is completed at once.
local ACKLESS
-- BACKLOG is this call's change to the shard's backlog total, written
-- once by settle: a send released in the same call adds nothing.
local BACKLOG

-- LAST is the stream's newest ID before the next append of this call.
local LAST
-- APPENDS counts this call's appends: new history, which an idle room's
-- expiry is measured from.
local APPENDS

-- append adds an event to the room's stream and publishes it, with the ID
-- it follows, on the shard channel named like the stream key (same hash
-- tag, so the same slot): readers wait on these notifications instead of
-- naming every followed stream in a blocking XREAD, and read the stream
-- when a notification does not follow what they read last.
local function append(fields)
  if not LAST then
    local last = rcall('XREVRANGE', KEYS[K_STREAM], '+', '-', 'COUNT', 1)
    LAST = last[1] and last[1][1] or '0-0'
  end
  if TRACK and not PREV then PREV = LAST end
  -- No argument table: built one by one, it would grow four times.
  local id
  if MAXLEN > 0 then
    -- MAXLEN as the caller wrote it: Redis formats a Lua number with printf.
    id = rcall('XADD', KEYS[K_STREAM], 'MAXLEN', '~', ARGV[2], '*', unpack(fields))
  else
    id = rcall('XADD', KEYS[K_STREAM], '*', unpack(fields))
  end
  rcall('SPUBLISH', KEYS[K_STREAM], cmsgpack.pack(LAST, id, fields))
  LAST = id
  APPENDS = APPENDS + 1
  if TRACK then APPENDED[#APPENDED + 1] = {id, fields} end
  if MAXAGE > 0 then
    rcall('XTRIM', KEYS[K_STREAM], 'MINID', '~', string.format('%d', NOW - MAXAGE))
  end
  return id
end

-- drop removes a member or observer and records why (and who, for an
-- admin's kick); nil if it was neither.
local function drop(c, ev, reason, actor)
  local role
  if rcall('ZREM', KEYS[K_MEM], c) == 1 then
    rcall('HDEL', KEYS[K_ACK], c)
    rcall('HDEL', KEYS[K_INC], c)
    rcall('HINCRBY', KEYS[K_STATS], 'members', -1)
    role = 'm'
  elseif rcall('ZREM', KEYS[K_OBS], c) == 1 then
    rcall('HINCRBY', KEYS[K_STATS], 'observers', -1)
    role = 'o'
  else
    return nil
  end
  DEADLINES, MEMBERS = true, true
  NMEM, NACK = nil, nil -- counted before this drop
  rcall('HDEL', KEYS[K_SEEN], c)
  local fields = {'t', ev, 'c', c, 'r', reason, 'o', role}
  if actor then
    fields[#fields + 1] = 'a'
    fields[#fields + 1] = actor
  end
  append(fields)
  return role
end

-- SKIPPED counts the stragglers this call skipped (policy straggler=skip).
local SKIPPED
-- stragglers handles the members that did not ack the in-flight message
-- by its ack deadline, by the room's straggler policy: evict them (reason
-- ack-timeout), or skip them: the message completes without them and they
-- stay members, each named in a skip event. Returns how many it evicted.
local function stragglers()
  local skip = policy().straggler == 'skip'
  local n = 0
  -- By name, as the windowed barrier does: one event order whatever the
  -- members' heartbeat deadlines.
  local mem = rcall('ZRANGE', KEYS[K_MEM], 0, -1)
  table.sort(mem)
  for _, c in ipairs(mem) do
    if rcall('HEXISTS', KEYS[K_ACK], c) == 0 then
      if skip then
        append({'t', 's', 'id', META.f or '', 'c', c, 'r', 'ack-deadline'})
        SKIPPED = SKIPPED + 1
      else
        drop(c, 'e', 'ack-timeout')
        n = n + 1
      end
    end
  end
  -- The release step completes the message without reading the acks.
  if SKIPPED > 0 then
    ACKED_ALL = true
    rcall('HINCRBY', KEYS[K_STATS], 'skipped', SKIPPED)
  end
  return n
end

-- The windowed barrier's functions (defined further down, with release).
local WINDOWED, win, load_policy

-- reap evicts members whose heartbeat deadline passed and, when the ack
-- deadline of the in-flight message passed, the members that did not ack it.
-- The due index holds the room's earliest deadline (update_index keeps it
-- exact), so a room with nothing expired costs one ZSCORE here.
local function reap()
  local due = rcall('ZSCORE', KEYS[K_DUE], ROOM)
  if not due then
    DUE = false
    return 0
  end
  DUE = tonumber(due)
  if DUE > NOW then return 0 end
  DEADLINES = true
  local n = 0
  for _, c in ipairs(rcall('ZRANGEBYSCORE', KEYS[K_MEM], '-inf', NOW)) do
    drop(c, 'e', 'timeout')
    n = n + 1
  end
  for _, c in ipairs(rcall('ZRANGEBYSCORE', KEYS[K_OBS], '-inf', NOW)) do
    drop(c, 'e', 'timeout')
    n = n + 1
  end
  local ad = tonumber(META.ad or '0')
  if ad > 0 and ad <= NOW then
    if WINDOWED then
      n = n + win().reap()
    else
      n = n + stragglers()
    end
    mset('ad', false)
    DEADLINES = true
  end
  return n
end

-- payload_refusal applies the room's MaxPayloadBytes to the payloads
-- ARGV[from..] (each a kind byte and the body): the reply refusing the
-- call for the first one too large, or nil. Nothing is written before it.
-- body_len is the size of a stored payload's body: without its kind byte
-- and, like Options.MaxPayloadBytes, without its header block ("h<block
-- length>:<block>", see header_block below).
local function body_len(p, from)
  from = from or 1
  if string.byte(p, from) == 104 then -- 'h'
    local n, at = string.match(p, '^h(%d+):()', from)
    if n then return #p - (at - 1) - tonumber(n) - 1 end
  end
  return #p - from
end
local function payload_refusal(from)
  if POLICY_ZERO then return nil end
  local limit = policy().maxpayload
  if limit <= 0 then return nil end
  for i = from, #ARGV do
    local n = body_len(ARGV[i])
    if n > limit then
      return {'TOO_LARGE', i - from, n, limit}
    end
  end
  return nil
end

-- LMPOP over the ten priority lists pops from the first non-empty one, so
-- finding the next message is one call whatever the priorities in use.
local function pop(count)
  -- Text arguments: Redis formats a number argument with printf.
  local r = rcall('LMPOP', '10', KEYS[K_Q0], KEYS[K_Q0 + 1], KEYS[K_Q0 + 2],
    KEYS[K_Q0 + 3], KEYS[K_Q0 + 4], KEYS[K_Q0 + 5], KEYS[K_Q0 + 6],
    KEYS[K_Q0 + 7], KEYS[K_Q0 + 8], KEYS[K_Q0 + 9], 'LEFT', 'COUNT', count == 1 and '1' or count)
  if not r then return nil end
  -- The list it popped from, by name: only the call that pops pays.
  local key = r[1]
  for p = 0, LEVELS - 1 do
    if KEYS[K_Q0 + p] == key then return r[2], p end
  end
  return r[2], nil
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
-- string.byte('r'), string.byte('m'): a library's top level runs at FUNCTION
-- LOAD, where Redis offers no global but redis's loading API (no string,
-- math, tonumber...); only code inside functions may use them.
local KIND_RAW, KIND_MSGPACK = 114, 109
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

-- take_deadline removes the per-message ack deadline of message seq (the
-- AckDeadline send option) and returns it in ms, or nil; "dn" in meta
-- counts such messages, so rooms without any pay no call here.
local function take_deadline(seq)
  if not META.dn then return nil end
  local dn = tonumber(META.dn)
  if dn <= 0 then return nil end
  local f = 'd:' .. seq
  local d = META[f]
  if d and META_DIRTY[f] then
    -- Set by this very call (a send released at once): never written.
    META[f], META_DIRTY[f] = nil, nil
  else
    d = rcall('HGET', KEYS[K_META], f)
    if not d then return nil end
    mset(f, false)
  end
  if dn > 1 then mset('dn', dn - 1) else mset('dn', false) end
  return tonumber(d)
end

-- ack_timeout is the ack timeout of message seq, released now: its own
-- deadline if it was sent with one, else the Queue's AckTimeout (0: none).
local function ack_timeout(seq)
  return take_deadline(seq) or ACKTIMEOUT
end

-- release is the barrier: it completes the in-flight message once every
-- current member acked it and then releases the next pending message (all of
-- them, in batches, when nobody is there to ack). Returns how many messages
-- it released, the seq of the last one, and the room's resulting state for
-- update_index (read once here, to keep the calls per script low).
local function release()
  if META_DIRTY['p:set'] then load_policy() end
  if WINDOWED then return win().release() end
  local st = {
    inflight = META.f and true or false,
    pend = META.pend and tonumber(META.pend) or 0,
    hold = META.hold == '1',
    ad = META.ad and tonumber(META.ad) or 0,
    -- A paused room completes its in-flight message but releases nothing
    -- new (admin_pause.lua).
    paused = META.pz ~= nil,
  }
  if st.inflight and ACKLESS and not MEMBERS and not ACKED_ALL then
    st.nmem = 1 -- at least one (see ACKLESS); only compared with 0
    return 0, nil, st
  end
  st.nmem = NMEM or rcall('ZCARD', KEYS[K_MEM])
  if st.inflight then
    if st.nmem > 0 and not ACKED_ALL and (NACK or rcall('HLEN', KEYS[K_ACK])) < st.nmem then return 0, nil, st end
    mset('f', false)
    mset('fs', false)
    mset('rt', false)
    if st.ad > 0 then
      mset('ad', false)
      DEADLINES = true
    end
    if NACK ~= 0 then rcall('DEL', KEYS[K_ACK]) end
    st.inflight, st.ad = false, 0
    COMPLETED = true
    mset('lc', nows())
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
          local timeout = ack_timeout(seq)
          if st.nmem > 0 then
            mset('f', seq)
            mset('fs', id)
            mset('rt', nows())
            st.inflight = true
            if timeout > 0 then
              st.ad = NOW + timeout
              mset('ad', st.ad)
              DEADLINES = true
            end
          end
        end
      end
    end
    -- Foreign entries were never counted in pend: only released ones are.
    st.pend = math.max(st.pend - n, 0)
    msetn('pend', st.pend)
    BACKLOG = BACKLOG - n
    if bad > 0 then rcall('HINCRBY', KEYS[K_STATS], 'malformed', bad) end
  end
  return n, last, st
end

-- ===== Windowed barrier: policy Window, Quorum / QuorumFraction, MaxLag =====
-- (docs/semantics.md, project rules "window" and "quorum".) Lock-step, the
-- default policy (window 1, every member), keeps release above and its
-- cost; a room runs here while its policy asks for more, and after the
-- policy went back to lock-step until nothing it tracks is left over.
--
-- Messages released to members get consecutive release numbers: meta rn
-- is the last one, cn the last completed. A member's ack record holds its
-- position "<n>:<ack ms>": it acked every message up to number n (acks are
-- cumulative), and a joiner starts at rn, so nothing released before its
-- join waits for it. Message k is complete once Q members' positions
-- reach k, so cn only moves up to the Q-th highest position, and messages
-- are released while rn - cn < window. wl lists "<seq>/<stream ID>/<release
-- ms>/<ack timeout ms>" for numbers above the lowest position (or cn), so a late ack of a
-- message completed without its member still finds its number. f, fs, rt
-- and ad name the oldest message not complete, as in lock-step; its ack
-- deadline runs from when it became the oldest.
local PWINDOW, PQUORUM, PQFRAC, PMAXLAG, POLICY_WINDOWED
-- load_policy takes the window/quorum part of policy(). Lock-step rooms,
-- the per-message path of the default policy, get by with a few table
-- lookups: policy() is built only for a stored policy that names a
-- window, quorum or lag, or for a Queue default policy (ARGV[5] ";...").
-- release calls it again when the script stored a policy (policy.lua).
load_policy = function()
  local stored = META['p:set']
  local maybe
  if stored then
    load_pfields()
    maybe = META['p:window'] or META['p:quorum'] or META['p:qfrac'] or META['p:maxlag']
  else
    maybe = string.find(ARGV[5], ';', 1, true)
  end
  POLICY_ZERO = not stored and not maybe
  PWINDOW, PQUORUM, PQFRAC, PMAXLAG = 1, 0, 0, 0
  if maybe then
    local p = policy()
    PWINDOW = math.max(1, p.window or 1)
    PQUORUM = p.quorum or 0
    PQFRAC = p.qfrac or 0
    PMAXLAG = p.maxlag or 0
  end
  POLICY_WINDOWED = PWINDOW > 1 or PQUORUM > 0 or PQFRAC > 0 or PMAXLAG > 0
  WINDOWED = POLICY_WINDOWED or META.rn ~= nil
end

-- WS is the windowed state (wload). The functions are built by win() on
-- first use, so lock-step calls do not pay for creating them.
local WS
local WIN
win = function()
  if WIN then return WIN end
  -- IMPLICIT_MAXLAG bounds a windowed room's lag when its policy sets no
  -- MaxLag (queue.DefaultMaxLag; rule 20); only windowed rooms use it.
  local IMPLICIT_MAXLAG = 1000
  local function wpos(v)
    return tonumber(string.match(v or '', '^(%d+)') or '0')
  end
  local function wfmt(n, ms)
    return string.format('%d:%d', n, ms)
  end

  -- quorum returns how many positions must reach a message to complete it.
  local function quorum(nmem)
    if PQUORUM > 0 then return math.min(PQUORUM, nmem) end
    if PQFRAC > 0 then
      -- Rounded up, with slack for binary fractions (0.7 * 10 is 7.000...1).
      return math.min(nmem, math.max(1, math.ceil(PQFRAC * nmem - 1e-9)))
    end
    return nmem
  end

  -- WS is the windowed state, read (or converted from lock-step) once.
  local function wload()
    if WS then return WS end
    WS = {list = {}}
    if META.rn then
      -- cn and wl were left out of the common read: rn marks a windowed room.
      local mv = rcall('HMGET', KEYS[K_META], 'cn', 'wl')
      if mv[1] and META_DIRTY.cn == nil then META.cn = mv[1] end
      if mv[2] and META_DIRTY.wl == nil then META.wl = mv[2] end
      WS.rn = tonumber(META.rn)
      WS.cn = tonumber(META.cn or META.rn)
      for seq, id, rt, to in string.gmatch(META.wl or '', '(%d+)/([%d%-]+)/(%d+)/(%d+)') do
        WS.list[#WS.list + 1] = {seq, id, rt, to}
      end
    else
      -- Entering from lock-step: the in-flight message, if any, becomes
      -- number 1, and the members that acked it (or joined after it) are at 1.
      local acks = {}
      local flat = rcall('HGETALL', KEYS[K_ACK])
      for i = 1, #flat, 2 do acks[flat[i]] = tonumber(flat[i + 1]) or 0 end
      WS.rn, WS.cn = 0, 0
      if META.f then
        WS.rn = 1
        WS.list[1] = {META.f, META.fs or '0-0', META.rt or string.format('%d', NOW), string.format('%d', ACKTIMEOUT)}
      end
      rcall('DEL', KEYS[K_ACK])
      local set = {'HSET', KEYS[K_ACK]}
      for _, c in ipairs(rcall('ZRANGE', KEYS[K_MEM], 0, -1)) do
        set[#set + 1] = c
        if acks[c] then set[#set + 1] = wfmt(WS.rn, acks[c]) else set[#set + 1] = '0:0' end
      end
      if #set > 2 then rcall(unpack(set)) end
    end
    WS.base = WS.rn - #WS.list
    return WS
  end

  -- wfind returns the release number and release time of message seq if it
  -- is still tracked (released, and not yet acked by everyone).
  local function wfind(seq)
    local w = wload()
    for i = #w.list, 1, -1 do
      if tonumber(w.list[i][1]) == seq then return w.base + i, w.list[i][3] end
    end
    return nil, nil
  end

  -- wdone is an ack reply's completion element: 1 if the ack completed the
  -- acked message, plus 2 when the room's quorum completes messages without
  -- every member (its processes then do not hold acks back waiting for
  -- their other members').
  local function wdone(completed)
    local v = 0
    if completed then v = 1 end
    if PQUORUM > 0 or PQFRAC > 0 then v = v + 2 end
    return v
  end

  -- wack moves member c's position up to number n (a cumulative ack); an
  -- ack of a message it already covered changes nothing.
  local function wack(c, n)
    if wpos(rcall('HGET', KEYS[K_ACK], c)) < n then
      rcall('HSET', KEYS[K_ACK], c, wfmt(n, NOW))
    end
  end

  -- wjoin gives a new member its position: nothing released before it joined
  -- waits for it.
  local function wjoin(c)
    rcall('HSET', KEYS[K_ACK], c, wfmt(wload().rn, 0))
  end

  -- wowed returns the stream entries of the messages member c has not acked,
  -- oldest first: what a member subscribing again must be handed again.
  local function wowed(c)
    local w = wload()
    local out = {}
    local from = math.max(wpos(rcall('HGET', KEYS[K_ACK], c)) - w.base, 0) + 1
    for i = from, #w.list do
      local id = w.list[i][2]
      local e = rcall('XRANGE', KEYS[K_STREAM], id, id)
      if e[1] then out[#out + 1] = e[1] end
    end
    return out
  end

  -- wlate returns the members that have not acked the oldest incomplete
  -- message, sorted (one event order whatever the hash's), with their
  -- records.
  local function wlate(w)
    local flat = rcall('HGETALL', KEYS[K_ACK])
    local late, rec = {}, {}
    for i = 1, #flat, 2 do
      if wpos(flat[i + 1]) <= w.cn then
        late[#late + 1] = flat[i]
        rec[flat[i]] = flat[i + 1]
      end
    end
    table.sort(late)
    return late, rec
  end

  -- wexcuse completes the oldest incomplete message without the members
  -- late on it (a skip, a force release): their position moves to it, as
  -- if they had acked it, so it counts in nobody's lag and their ack of
  -- it is one their position already covers (rule 18), exactly as in
  -- lock-step, where it is stale. Leaving them behind instead would let
  -- every skip add to their lag and to what the room tracks.
  local function wexcuse(w, late, rec)
    local k = w.cn + 1
    local set = {'HSET', KEYS[K_ACK]}
    for _, c in ipairs(late) do
      set[#set + 1] = c
      set[#set + 1] = wfmt(k, tonumber(string.match(rec[c], ':(%d+)$') or '0'))
    end
    if #set > 2 then rcall(unpack(set)) end
  end

  -- wreap handles, at the oldest incomplete message's ack deadline, the
  -- members that have not acked it, by the straggler policy.
  local function wreap()
    local w = wload()
    if w.cn >= w.rn then return 0 end
    local late, rec = wlate(w)
    if policy().straggler == 'skip' then
      -- The message completes without them; they stay members.
      local seq = w.list[w.cn + 1 - w.base][1]
      for _, c in ipairs(late) do
        append({'t', 's', 'id', seq, 'c', c, 'r', 'ack-deadline'})
        SKIPPED = SKIPPED + 1
      end
      if #late > 0 then
        rcall('HINCRBY', KEYS[K_STATS], 'skipped', #late)
        wexcuse(w, late, rec)
      end
      return 0
    end
    local n = 0
    for _, c in ipairs(late) do
      if drop(c, 'e', 'ack-timeout') then n = n + 1 end
    end
    return n
  end

  -- wpop releases up to want pending messages, tracking them when the room
  -- has members; returns how many it released, the last seq, malformed count.
  local function wpop(w, want, track)
    local n, last, bad = 0, nil, 0
    while n < want and bad < DRAIN_BATCH do
      local ms, p = pop(want - n)
      if not ms then return n, last, bad, true end
      for _, m in ipairs(ms) do
        local seq, id = release_entry(m, p)
        if not seq then
          bad = bad + 1
        else
          last = seq
          n = n + 1
          local timeout = ack_timeout(seq)
          if track then
            w.rn = w.rn + 1
            w.list[#w.list + 1] = {seq, id, string.format('%d', NOW), string.format('%d', timeout)}
          end
        end
      end
    end
    return n, last, bad, false
  end

  local function wrelease()
    local w = wload()
    local st = {
      pend = META.pend and tonumber(META.pend) or 0,
      hold = META.hold == '1',
      ad = META.ad and tonumber(META.ad) or 0,
      nmem = rcall('ZCARD', KEYS[K_MEM]),
      paused = META.pz ~= nil, -- completes what it can, releases nothing
    }
    local cn0 = w.cn
    local n, last, bad = 0, nil, 0
    local pos
    while true do
      pos = {}
      local order = {}
      if st.nmem > 0 then
        local flat = rcall('HGETALL', KEYS[K_ACK])
        for i = 1, #flat, 2 do
          local p = wpos(flat[i + 1])
          pos[flat[i]] = p
          order[#order + 1] = p
        end
        table.sort(order, function(a, b) return a > b end)
        -- Members without a record acked nothing: they rank last.
        local target = order[quorum(st.nmem)] or 0
        if target > w.cn then w.cn = math.min(target, w.rn) end
      else
        w.cn = w.rn
      end
      if not POLICY_WINDOWED and w.cn == w.rn then
        local low = w.rn
        for _, p in pairs(pos) do low = math.min(low, p) end
        if low >= w.rn then
          -- Back to lock-step: nothing in flight and every member caught up.
          mset('rn', false)
          mset('cn', false)
          mset('wl', false)
          if META.f then
            mset('f', false)
            mset('fs', false)
            mset('rt', false)
          end
          if st.ad > 0 then
            mset('ad', false)
            DEADLINES = true
          end
          if w.cn > cn0 then
            COMPLETED = true
            mset('lc', NOW)
          end
          rcall('DEL', KEYS[K_ACK])
          WINDOWED = false
          local n2, last2, st2 = release()
          return n + n2, last2 or last, st2
        end
      end
      if st.pend > 0 and not (st.nmem == 0 and st.hold) and not st.paused then
        local want = PWINDOW - (w.rn - w.cn)
        if st.nmem == 0 then want = DRAIN_BATCH end
        if want > 0 then
          local k, l, b, dry = wpop(w, want, st.nmem > 0)
          n, bad = n + k, bad + b
          if l then last = l end
          if dry then
            -- The counter drifted from the lists (manual edits): trust the lists.
            st.pend = 0
          else
            st.pend = math.max(st.pend - k, 0)
          end
        end
      end
      -- MaxLag: a member more than that many released messages behind is
      -- evicted; completion may then move on, so go round again. Without
      -- one, the limit is max(window, IMPLICIT_MAXLAG): what this room
      -- tracks (wl) spans the lowest position, so a member that never acks
      -- while a quorum moves on must not stay for ever.
      local lagging = {}
      if st.nmem > 0 then
        local limit = PMAXLAG
        if limit <= 0 then limit = math.max(PWINDOW, IMPLICIT_MAXLAG) end
        for c, p in pairs(pos) do
          if w.rn - p > limit then lagging[#lagging + 1] = c end
        end
        table.sort(lagging)
      end
      local evicted = false
      for _, c in ipairs(lagging) do
        if drop(c, 'e', 'max-lag') then
          st.nmem = st.nmem - 1
          evicted = true
        end
      end
      if not evicted then break end
    end
    if n > 0 or bad > 0 or st.pend ~= tonumber(META.pend or '0') then mset('pend', st.pend) end
    BACKLOG = BACKLOG - n
    if bad > 0 then rcall('HINCRBY', KEYS[K_STATS], 'malformed', bad) end
    if w.cn > cn0 then
      COMPLETED = true
      mset('lc', NOW)
    end
    -- The oldest message not complete is the one the ack deadline watches.
    st.inflight = w.cn < w.rn
    if st.inflight then
      local e = w.list[w.cn + 1 - w.base]
      local fresh = META.fs ~= e[2]
      if fresh then
        mset('f', e[1])
        mset('fs', e[2])
        mset('rt', e[3])
      end
      local timeout = tonumber(e[4])
      if timeout > 0 and (fresh or st.ad == 0) then
        st.ad = NOW + timeout
        mset('ad', st.ad)
        DEADLINES = true
      elseif fresh and st.ad > 0 and timeout == 0 then
        -- The previous oldest's deadline is not this message's.
        mset('ad', false)
        st.ad = 0
        DEADLINES = true
      end
    else
      if META.f then
        mset('f', false)
        mset('fs', false)
        mset('rt', false)
      end
      if st.ad > 0 then
        mset('ad', false)
        st.ad = 0
        DEADLINES = true
      end
    end
    -- Keep the entries someone may still ack: above the lowest position.
    local low = w.cn
    for _, p in pairs(pos) do low = math.min(low, p) end
    local cut = math.max(low - w.base, 0)
    local parts = {}
    for i = cut + 1, #w.list do
      local e = w.list[i]
      parts[#parts + 1] = e[1] .. '/' .. e[2] .. '/' .. e[3] .. '/' .. e[4]
    end
    local wl = table.concat(parts, ' ')
    if wl ~= (META.wl or '') or not META.rn then mset('wl', wl) end
    local rn, cn = string.format('%d', w.rn), string.format('%d', w.cn)
    if rn ~= META.rn then mset('rn', rn) end
    if cn ~= META.cn then mset('cn', cn) end
    return n, last, st
  end
  -- wforce completes the oldest message in flight without the members
  -- that have not acked it (admin_release.lua), as a skip does: they stay,
  -- excused from it. It returns them, sorted, or nil when nothing is in
  -- flight.
  local function wforce()
    local w = wload()
    if w.cn >= w.rn then return nil end
    local late, rec = wlate(w)
    wexcuse(w, late, rec)
    return late
  end

  WIN = {load = wload, find = wfind, ack = wack, join = wjoin, owed = wowed,
    reap = wreap, release = wrelease, done = wdone, pos = wpos, fmt = wfmt,
    force = wforce}
  return WIN
end

-- ===== end of the windowed barrier =====

-- IDLE_FOREVER is the room index score of an idle room kept forever
-- (IDLETTL negative); other idle rooms score -(expiry ms), far below it.
local IDLE_FOREVER = -1
-- EXPIRED says this call deleted the room: it had been idle for IDLETTL.
local EXPIRED

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
  rcall(unpack(del))
  rcall('ZREM', KEYS[K_ROOMS], ROOM)
  rcall('ZREM', KEYS[K_DUE], ROOM)
  rcall('HINCRBY', KEYS[K_STATS], 'expired', 1)
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
    rcall('ZREM', KEYS[K_ROOMS], ROOM)
    if DUE ~= false then rcall('ZREM', KEYS[K_DUE], ROOM) end
    return
  end
  -- Read here only: live rooms, the per-message path, never need it.
  local IDLETTL = tonumber(string.match(ARGV[5], '^[01]:(%-?%d+)') or '-1')
  local s = tonumber(rcall('ZSCORE', KEYS[K_ROOMS], ROOM) or '0')
  local expiry -- nil: kept forever
  if s < 0 then
    if APPENDS > 0 then
      -- The new events age out at NOW + MAXAGE; any older one earlier, so
      -- a later deadline means the stream had aged out to nothing.
      local trim = NOW + MAXAGE + 1
      if MAXAGE > 0 and (DUE == false or DUE > trim) then
        rcall('ZADD', KEYS[K_DUE], trim, ROOM)
      end
      return
    end
    if DUE == false or DUE == nil or DUE > NOW then return end
    if IDLETTL > 0 then
      expiry = NOW + IDLETTL -- it was kept forever until now
      if s ~= IDLE_FOREVER then expiry = -s end
      if expiry <= NOW then
        local last = rcall('XREVRANGE', KEYS[K_STREAM], '+', '-', 'COUNT', 1)[1]
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
    rcall('XTRIM', KEYS[K_STREAM], 'MINID', string.format('%d', NOW - MAXAGE))
    local first = rcall('XRANGE', KEYS[K_STREAM], '-', '+', 'COUNT', 1)[1]
    if first then
      -- At most about ten trims per StreamMaxAge, so events outlive it by
      -- a tenth at most (plus a housekeeping interval).
      trim = math.max(id_ms(first[1]) + MAXAGE + 1, NOW + math.floor(MAXAGE / 10))
    end
  end
  local score = IDLE_FOREVER
  if expiry then score = -expiry end
  if score ~= s then rcall('ZADD', KEYS[K_ROOMS], score, ROOM) end
  local d = expiry
  if trim and (not d or trim < d) then d = trim end
  if d then
    if d ~= DUE then rcall('ZADD', KEYS[K_DUE], d, ROOM) end
  elseif DUE ~= false then
    rcall('ZREM', KEYS[K_DUE], ROOM)
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
    rcall('ZADD', KEYS[K_ROOMS], string.format('%d', st.pend), ROOM)
  else
    nobs = rcall('ZCARD', KEYS[K_OBS])
    if nobs > 0 then
      rcall('ZADD', KEYS[K_ROOMS], st.pend, ROOM)
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
    d = tonumber(rcall('ZRANGE', KEYS[K_MEM], 0, 0, 'WITHSCORES')[2])
  end
  if nobs == nil or nobs > 0 then
    local o = rcall('ZRANGE', KEYS[K_OBS], 0, 0, 'WITHSCORES')[2]
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
    if d ~= DUE then rcall('ZADD', KEYS[K_DUE], d, ROOM) end
  elseif DUE ~= false then
    rcall('ZREM', KEYS[K_DUE], ROOM)
  end
end

-- clear_deadlines deletes the per-message ack deadlines left in meta
-- when the room has nothing pending: those of messages removed without
-- being released or dropped by send.lua (an operator's purge, manual
-- edits). Only rooms with "dn" set pay its HKEYS.
local function clear_deadlines()
  for _, f in ipairs(rcall('HKEYS', KEYS[K_META])) do
    if string.sub(f, 1, 2) == 'd:' then mset(f, false) end
  end
  mset('dn', false)
end

-- settle is the common tail of every state change.
local function settle()
  local n, last, st = release()
  if st.pend == 0 and META.dn then clear_deadlines() end
  update_index(st)
  flush_meta()
  if BACKLOG ~= 0 then rcall('HINCRBY', KEYS[K_STATS], 'backlog', string.format('%d', BACKLOG)) end
  BACKLOG = 0
  return n, last
end

-- begin sets the state of one call, from KEYS and ARGV; every script that
-- includes room.lua runs it before its own code. Every top-level local
-- above that a call changes is set here (TestRoomStateReset checks it).
local function begin()
  if not rcall then
    bind()
  end
  ROOM = ARGV[1]
  -- "0" (none) is the common value: a string comparison, no strtod.
  MAXLEN = ARGV[2] == '0' and 0 or tonumber(ARGV[2])
  MAXAGE = ARGV[3] == '0' and 0 or tonumber(ARGV[3])
  ACKTIMEOUT = ARGV[4] == '0' and 0 or tonumber(ARGV[4])
  HOLD = string.sub(ARGV[5], 1, 1)
  NOW = now_ms()
  NOWS = nil
  read_meta()
  META_DIRTY = {}
  POLICY, PFIELDS = nil, false
  DEADLINES, DUE, MEMBERS = false, nil, false
  PEND0 = tonumber(META.pend or '0')
  -- Parsed once: every later tonumber(META.pend) then gets a number.
  if META.pend then META.pend = PEND0 end
  TRACK, PREV, APPENDED = false, nil, {}
  COMPLETED, ACKED_ALL = false, false
  NMEM, NACK, ACKLESS, BACKLOG = nil, nil, false, 0
  LAST, APPENDS, SKIPPED = nil, 0, 0
  WS, WIN = nil, nil
  EXPIRED = false
  load_policy()
end
