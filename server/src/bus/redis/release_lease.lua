-- KEYS: the shard's lease. ARGV: owner.
-- Returns 1 if the lease was ours and is now free, else 0.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
