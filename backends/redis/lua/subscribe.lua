-- Returns the last id a topic stream generated, creating the stream (empty,
-- last id 0-0) if it does not exist, and refreshes its TTL: a topic's
-- stream lives as long as a node subscribes to it, so that its last id and
-- the predecessor chain of its entries (see publish.lua) are not lost.
-- KEYS[1] topic stream; ARGV[1] TTL ms
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('XGROUP', 'CREATE', KEYS[1], 'ssebridge-init', '$', 'MKSTREAM')
  redis.call('XGROUP', 'DESTROY', KEYS[1], 'ssebridge-init')
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  return '0-0'
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
local info = redis.call('XINFO', 'STREAM', KEYS[1])
for i = 1, #info, 2 do
  if info[i] == 'last-generated-id' then
    return info[i + 1]
  end
end
return redis.error_reply('XINFO STREAM without last-generated-id')
