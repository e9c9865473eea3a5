#!lua flags=no-writes
-- KEYS: flow stream, its origin
-- ARGV: cursor
-- Reads at once what the flow stream holds around the cursor. Returns {}
-- when the stream does not exist, else {origin, last generated id, first
-- entry, newest entry at or before the cursor, oldest entry after it}, each
-- an id or '' for none.
if redis.call('EXISTS', KEYS[1]) == 0 then return {} end
local last, first = '', ''
local info = redis.call('XINFO', 'STREAM', KEYS[1])
for k = 1, #info, 2 do
  if info[k] == 'last-generated-id' then
    last = info[k + 1]
  elseif info[k] == 'first-entry' and info[k + 1] then
    first = info[k + 1][1]
  end
end
local function id_of(reply)
  if type(reply) == 'table' and reply.err == nil and reply[1] then return reply[1][1] end
  return ''
end
return {redis.call('GET', KEYS[2]) or '', last, first,
  id_of(redis.call('XREVRANGE', KEYS[1], ARGV[1], '-', 'COUNT', 1)),
  -- No id follows the greatest: that range is an error, read as none.
  id_of(redis.pcall('XRANGE', KEYS[1], '(' .. ARGV[1], '+', 'COUNT', 1))}
