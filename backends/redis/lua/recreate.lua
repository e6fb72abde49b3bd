-- Re-creates a session record the owner still holds, if it is missing
-- (Redis lost its data, or the record expired while Redis was out of
-- reach).
-- KEYS[1] session; ARGV[1] node, ARGV[2] namespace, ARGV[3] base seq,
-- ARGV[4] version, ARGV[5] SessionTTL ms, then pairs t:<topic>, position
-- Returns 1 when re-created, 0 when the record exists.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], 'o', ARGV[1], 'ns', ARGV[2], 'b', ARGV[3], 'v', ARGV[4])
for i = 6, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
