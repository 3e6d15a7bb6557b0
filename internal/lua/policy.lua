#!lua
-- policy.lua: replace the room's policy (see policy() in room.lua), record
-- it as a policy event, and release what the new policy allows.
-- include: room.lua
-- KEYS: the room keys (room.lua).
-- ARGV: 1-5 common (room.lua); 6 the policy's text form ("" for the zero
--       policy), checked by the caller.
-- Returns: {"OK", released count, last released seq or false,
--           stream ID before the appended entries or false,
--           appended entries {{id, {field, value, ...}}, ...}}
TRACK = true
epoch()
reap()
local given = {}
for k, v in string.gmatch(ARGV[6], '([%w]+)=([^,]*)') do given[k] = v end
mset('p:set', '1')
for _, k in ipairs(POLICY_FIELDS) do
  -- Fields not given are deleted whether they exist or not: one HDEL.
  mset('p:' .. k, given[k] or false)
end
POLICY = nil -- policy() reads the new fields
PFIELDS = true -- every p: field was just set or deleted: nothing to read
append({'t', 'p', 'v', ARGV[6]})
local n, last = settle()
return {'OK', n, last or false, PREV or false, APPENDED}
