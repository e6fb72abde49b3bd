-- The claim: moves a session record to the claiming node if its version is
-- still the one the claim read.
-- KEYS[1] session; ARGV[1] node, ARGV[2] version read, ARGV[3] base seq,
-- ARGV[4] SessionTTL ms, then pairs t:<topic>, position
-- Returns the new version (>= 2), 0 when the record is missing, -1 when it
-- changed since it was read.
local v = redis.call('HGET', KEYS[1], 'v')
if not v then
  return 0
end
if v ~= ARGV[2] then
  return -1
end
redis.call('HSET', KEYS[1], 'o', ARGV[1], 'b', ARGV[3])
for i = 5, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
local nv = redis.call('HINCRBY', KEYS[1], 'v', 1)
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return nv
