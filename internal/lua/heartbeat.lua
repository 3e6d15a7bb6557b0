#!lua
-- heartbeat.lua: extend the deadline of some members or observers of one room.
-- Expired members are reaped first, so a heartbeat that arrives after its
-- deadline reports the client as gone instead of reviving it.
-- include: room.lua
-- KEYS: the room keys (room.lua).
-- ARGV: 1-5 common (room.lua); 6 timeout ms; 7.. client IDs.
-- Returns: {"OK", released count, 1|0 per client (still in the room or not)}
ACKLESS = true
reap()
local deadline = NOW + tonumber(ARGV[6])
local res = {'OK', 0}
-- One lookup and one write per set for a chunk of clients, not per client:
-- a process heartbeats all its clients of the room in one call. Chunks
-- keep each command's arguments within what Lua's unpack allows.
local CHUNK = 1000
local live = false
for from = 7, #ARGV, CHUNK do
  local cs = {unpack(ARGV, from, math.min(from + CHUNK - 1, #ARGV))}
  local mem, obs, seen = {'ZADD', KEYS[K_MEM]}, {'ZADD', KEYS[K_OBS]}, {'HSET', KEYS[K_SEEN]}
  local inmem = rcall('ZMSCORE', KEYS[K_MEM], unpack(cs))
  local rest, names = {}, {}
  for i, c in ipairs(cs) do
    if inmem[i] then
      mem[#mem + 1] = deadline
      mem[#mem + 1] = c
    else
      rest[#rest + 1] = i
      names[#names + 1] = c
    end
  end
  local alive = {}
  for i in ipairs(cs) do alive[i] = inmem[i] and true or false end
  if #names > 0 then
    local inobs = rcall('ZMSCORE', KEYS[K_OBS], unpack(names))
    for j, i in ipairs(rest) do
      if inobs[j] then
        alive[i] = true
        obs[#obs + 1] = deadline
        obs[#obs + 1] = cs[i]
      end
    end
  end
  for i, c in ipairs(cs) do
    if alive[i] then
      seen[#seen + 1] = c
      seen[#seen + 1] = NOW
      res[#res + 1] = 1
    else
      res[#res + 1] = 0
    end
  end
  if #mem > 2 then rcall(unpack(mem)) end
  if #obs > 2 then rcall(unpack(obs)) end
  if #seen > 2 then
    rcall(unpack(seen))
    live = true
  end
end
if live then DEADLINES = true end
res[2] = settle()
return res
