-- KEYS: the shard's lease. ARGV: owner, ttl in ms.
-- Returns 1 if the lease was ours and now lasts ttl again, else 0.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
