-- KEYS: flow stream, lease, guard, then (volume hash, premium hash) per day, then the stream's origin
-- ARGV: owner, maxlen, minid ('' = none), channel, live message bytes, day ttl,
--       publish command (PUBLISH on one Redis, SPUBLISH on a cluster),
--       nprune, prune..., nevents, {nlegs, legs..., json}..., nadd, {key index, field, amount}...
-- Returns each event's stream id. If any event's first leg is in the guard
-- (it was committed before), writes nothing and returns those events'
-- 0-based indexes as integers: the caller commits the rest without them.
if redis.call('GET', KEYS[2]) ~= ARGV[1] then
  return redis.error_reply('LEASE_LOST the shard lease is held by another processor')
end
local function in_chunks(cmd, key, list)
  for s = 1, #list, 1000 do
    redis.call(cmd, key, unpack(list, s, math.min(s + 999, #list)))
  end
end
local i = 8
local np = tonumber(ARGV[i]); i = i + 1
local prune_at = i
i = i + np
local ne = tonumber(ARGV[i]); i = i + 1
-- Where each event's legs start, and its first legs, to test against the guard at once.
local starts, firsts = {}, {}
for e = 1, ne do
  starts[e] = i
  firsts[e] = ARGV[i + 1]
  i = i + tonumber(ARGV[i]) + 2
end
local dup = {}
for s = 1, ne, 1000 do
  local part = redis.call('SMISMEMBER', KEYS[3], unpack(firsts, s, math.min(s + 999, ne)))
  for k = 1, #part do
    if part[k] == 1 then dup[#dup + 1] = s + k - 2 end
  end
end
if #dup > 0 then return dup end
if np > 0 then
  local prune = {}
  for k = prune_at, prune_at + np - 1 do prune[#prune + 1] = ARGV[k] end
  in_chunks('SREM', KEYS[3], prune)
end
-- A stream this commit creates records its first id as its origin: older
-- history is not this stream's, it was lost (docs/redis.md, "History loss").
local created = ne > 0 and redis.call('EXISTS', KEYS[1]) == 0
-- Live messages are built from pieces and joined once: no string per event.
local out, legs, live, n, size = {}, {}, {}, 0, 0
local channel, maxbytes, publish = ARGV[4], tonumber(ARGV[5]), ARGV[7]
for e = 1, ne do
  local at = starts[e]
  local nl = tonumber(ARGV[at])
  local json = ARGV[at + nl + 1]
  local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'e', json)
  for l = at + 1, at + nl do legs[#legs + 1] = ARGV[l] end
  if size > 0 and size + #id + #json + 1 > maxbytes then
    redis.call(publish, channel, table.concat(live, '', 1, n - 1))
    n, size = 0, 0
  end
  live[n + 1] = id; live[n + 2] = ' '; live[n + 3] = json; live[n + 4] = '\n'
  n = n + 4
  size = size + #id + #json + 2
  out[e] = id
end
if #legs > 0 then in_chunks('SADD', KEYS[3], legs) end
if created then redis.call('SET', KEYS[#KEYS], out[1]) end
local na = tonumber(ARGV[i]); i = i + 1
local touched = {}
for a = 1, na do
  local k = tonumber(ARGV[i])
  redis.call('HINCRBY', KEYS[k], ARGV[i + 1], ARGV[i + 2])
  touched[k] = true
  i = i + 3
end
for k in pairs(touched) do redis.call('EXPIRE', KEYS[k], ARGV[6]) end
if n > 0 then redis.call(publish, channel, table.concat(live, '', 1, n - 1)) end
if ARGV[3] ~= '' then redis.call('XTRIM', KEYS[1], 'MINID', '~', ARGV[3]) end
return out
