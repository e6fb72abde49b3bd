-- Extends the TTL of a session record the node owns (the heartbeat).
-- KEYS[1] session; ARGV[1] node, ARGV[2] SessionTTL ms
-- Returns {1} when refreshed, {0} when the record is missing, {-1, v}
-- when another node owns it (v: the record's version), which the node then
-- releases: it lost a release notice.
local o = redis.call('HGET', KEYS[1], 'o')
if not o then
  return {0}
end
if o ~= ARGV[1] then
  return {-1, redis.call('HGET', KEYS[1], 'v') or '0'}
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {1}
