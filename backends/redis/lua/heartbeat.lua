-- Heartbeat (and Attach) of a node. All keys are in the node's slot.
-- KEYS[1] alive, KEYS[2] inbox, KEYS[3] log, KEYS[4] cur, KEYS[5] top
-- ARGV[1] NodeTTL in ms, ARGV[2] NodeTTL+SessionTTL in ms
-- Returns 1 if the inbox had to be created (at Attach; later: Redis lost
-- its data), else 0.
redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
local created = 0
if redis.call('EXISTS', KEYS[2]) == 0 then
  -- An empty stream: add an entry, then trim it away.
  redis.call('XADD', KEYS[2], '*', 't', 'x')
  redis.call('XTRIM', KEYS[2], 'MAXLEN', '0')
  created = 1
end
redis.call('PEXPIRE', KEYS[2], ARGV[2])
redis.call('PEXPIRE', KEYS[3], ARGV[2])
redis.call('PEXPIRE', KEYS[4], ARGV[2])
redis.call('PEXPIRE', KEYS[5], ARGV[2])
return created
