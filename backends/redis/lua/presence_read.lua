-- Reads a channel's presence, after dropping its expired entries.
-- KEYS[1] presence hash (client → entry), KEYS[2] presence-exp zset
-- ARGV[1] "all": returns HGETALL (client, entry, client, entry…);
-- "stats": returns {clients, distinct non-empty users}, reading the user at
-- the start of each entry, "1|<len>:<user>" (see presence.go).
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
if ARGV[1] ~= 'stats' then
  return redis.call('HGETALL', KEYS[1])
end
local vals = redis.call('HVALS', KEYS[1])
local seen = {}
local users = 0
for _, v in ipairs(vals) do
  local i = string.find(v, ':', 3, true)
  local n = i and tonumber(string.sub(v, 3, i - 1))
  if n and n > 0 then
    local u = string.sub(v, i + 1, i + n)
    if not seen[u] then
      seen[u] = true
      users = users + 1
    end
  end
end
return {#vals, users}
