-- Sets (4 arguments) or removes (3 arguments) a topic of a session record
-- owned by the node.
-- KEYS[1] session; ARGV[1] node, ARGV[2] SessionTTL ms, ARGV[3] field
-- t:<topic>, ARGV[4] position
-- Returns the record's new version (>= 2), 0 when the record is missing,
-- -1 when another node owns it.
local o = redis.call('HGET', KEYS[1], 'o')
if not o then
  return 0
end
if o ~= ARGV[1] then
  return -1
end
if #ARGV >= 4 then
  redis.call('HSET', KEYS[1], ARGV[3], ARGV[4])
else
  redis.call('HDEL', KEYS[1], ARGV[3])
end
local v = redis.call('HINCRBY', KEYS[1], 'v', 1)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return v
