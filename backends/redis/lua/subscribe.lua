-- Returns the last id a topic stream generated, creating the stream if it
-- does not exist, and refreshes its TTL: a topic's stream lives as long as
-- a node subscribes to it, so that its last id and the predecessor chain of
-- its entries (see publish.lua) are not lost.
-- A stream that does not exist may have had entries before (it expired,
-- or Redis lost its data): it is created empty with last id <now>-0 (Redis'
-- clock), which is returned, so that a replay from an earlier position
-- reports a gap (the first entry published after it has pv <now>-0).
-- KEYS[1] topic stream; ARGV[1] TTL ms
if redis.call('EXISTS', KEYS[1]) == 0 then
  local t = redis.call('TIME')
  local now = string.format('%.0f', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)) .. '-0'
  redis.call('XGROUP', 'CREATE', KEYS[1], 'ssebridge-init', '$', 'MKSTREAM')
  redis.call('XGROUP', 'DESTROY', KEYS[1], 'ssebridge-init')
  redis.call('XSETID', KEYS[1], now)
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  return now
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
local info = redis.call('XINFO', 'STREAM', KEYS[1])
for i = 1, #info, 2 do
  if info[i] == 'last-generated-id' then
    return info[i + 1]
  end
end
return redis.error_reply('XINFO STREAM without last-generated-id')
