-- Adds or refreshes a client's presence entry in a channel, expiring ttl
-- after now on Redis' clock, and drops up to 100 expired entries.
-- KEYS[1] presence hash (client → entry), KEYS[2] presence-exp zset
-- (client → expiry, unix ms); ARGV[1] client, ARGV[2] entry, ARGV[3] ttl ms
-- Both keys expire with their last entry: PEXPIRE to the largest expiry.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local old = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 100)
if #old > 0 then
  redis.call('HDEL', KEYS[1], unpack(old))
  redis.call('ZREM', KEYS[2], unpack(old))
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[1])
local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
local keep = math.max(tonumber(last[2]) - now, 1)
redis.call('PEXPIRE', KEYS[1], keep)
redis.call('PEXPIRE', KEYS[2], keep)
return 1
