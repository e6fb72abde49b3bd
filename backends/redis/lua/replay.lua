-- Where a replay of a topic after a position starts.
-- KEYS[1] topic stream; ARGV[1] XRANGE start ("-" or "(<after>")
-- Returns {0} when the stream does not exist; {1, last-generated-id} when
-- it holds no entry after the position; {2, id, pv} for the first entry
-- after the position and the id of the entry that preceded it.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {0}
end
local e = redis.call('XRANGE', KEYS[1], ARGV[1], '+', 'COUNT', 1)
if #e == 0 then
  local info = redis.call('XINFO', 'STREAM', KEYS[1])
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then
      return {1, info[i + 1]}
    end
  end
  return redis.error_reply('XINFO STREAM without last-generated-id')
end
local f = e[1][2]
local pv = '0-0'
for i = 1, #f, 2 do
  if f[i] == 'pv' then
    pv = f[i + 1]
  end
end
return {2, e[1][1], pv}
