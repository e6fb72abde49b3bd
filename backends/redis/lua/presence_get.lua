-- Returns a channel's presence, after dropping its expired entries.
-- KEYS[1] presence hash, KEYS[2] presence-exp zset
-- Returns HGETALL: client, entry, client, entry…
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
while true do
  local old = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 1000)
  if #old == 0 then
    break
  end
  redis.call('HDEL', KEYS[1], unpack(old))
  redis.call('ZREM', KEYS[2], unpack(old))
  if #old < 1000 then
    break
  end
end
return redis.call('HGETALL', KEYS[1])
