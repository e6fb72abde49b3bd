-- Wakes a node's topic reader blocked in XREAD on its bucket.
-- KEYS[1] wake stream; ARGV[1] TTL ms
redis.call('XADD', KEYS[1], 'MAXLEN', '1', '*', 'w', '1')
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
