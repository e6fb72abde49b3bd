-- Creates a session record unless one exists.
-- KEYS[1] session; ARGV[1] node, ARGV[2] namespace, ARGV[3] SessionTTL ms
-- Returns 1 when created, 0 when the session exists.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], 'o', ARGV[1], 'ns', ARGV[2], 'b', '0', 'v', '1')
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
