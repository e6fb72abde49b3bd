-- Removes a client's presence entry from a channel (absent: nothing to do).
-- KEYS[1] presence hash, KEYS[2] presence-exp zset; ARGV[1] client
-- A key left without members is deleted by Redis.
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
