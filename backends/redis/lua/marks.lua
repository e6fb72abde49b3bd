-- Writes a node's marks to its mark log and its last position per topic,
-- before the publications are broadcast.
-- KEYS[1] log, KEYS[2] cur (the node's slot)
-- ARGV[1] MarkLogLength, ARGV[2] TTL ms, then triples mark, topic, position
-- Marks already in the log (a retry after an ambiguous failure) are
-- skipped, so a retry neither fails nor writes a mark twice.
local function after(a, b)
  if #a ~= #b then
    return #a > #b
  end
  return a > b
end
local top = nil
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if #last > 0 then
  top = string.match(last[1][1], '^(%d+)')
end
for i = 3, #ARGV, 3 do
  local m = ARGV[i]
  if top == nil or after(m, top) then
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], m .. '-1', 't', ARGV[i + 1], 'p', ARGV[i + 2])
    top = m
  end
  redis.call('HSET', KEYS[2], ARGV[i + 1], ARGV[i + 2])
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return 1
