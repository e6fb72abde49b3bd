-- Returns the last id a topic stream generated, creating the stream if it
-- does not exist, and refreshes its TTL: a topic's stream lives as long as
-- a node subscribes to it, so that its last id and the predecessor chain of
-- its entries (see publish.lua) are not lost.
-- A stream that does not exist may have had entries before (it expired,
-- or Redis lost its data): it is created empty with last id <now>-0 (Redis'
-- clock), which is returned, so that a replay from an earlier position
-- reports a gap (the first entry published after it has pv <now>-0).
-- The topic's meta hash (offsets, see publish.lua) follows the stream: a
-- stream created here starts a new epoch, ARGV[2], with no publication
-- yet (the meta is replaced); an existing stream whose meta has no epoch
-- gets ARGV[2] too. The meta gets the stream's TTL.
-- KEYS[1] topic stream, KEYS[2] the topic's meta (same slot); ARGV[1] TTL
-- ms, ARGV[2] a new epoch (unique, never used before)
if redis.call('EXISTS', KEYS[1]) == 0 then
  local t = redis.call('TIME')
  local now = string.format('%.0f', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)) .. '-0'
  redis.call('XGROUP', 'CREATE', KEYS[1], 'ssebridge-init', '$', 'MKSTREAM')
  redis.call('XGROUP', 'DESTROY', KEYS[1], 'ssebridge-init')
  redis.call('XSETID', KEYS[1], now)
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[2], 'e', ARGV[2])
  redis.call('PEXPIRE', KEYS[2], ARGV[1])
  return now
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
if redis.call('HEXISTS', KEYS[2], 'e') == 0 then
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[2], 'e', ARGV[2])
end
redis.call('PEXPIRE', KEYS[2], ARGV[1])
local info = redis.call('XINFO', 'STREAM', KEYS[1])
for i = 1, #info, 2 do
  if info[i] == 'last-generated-id' then
    return info[i + 1]
  end
end
return redis.error_reply('XINFO STREAM without last-generated-id')
