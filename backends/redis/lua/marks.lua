-- Writes a node's marks to its mark log and, for live broadcasts, its last
-- position per topic, before the publications are handed over.
-- KEYS[1] log, KEYS[2] cur, KEYS[3] top (the node's slot): top gets, per
-- topic, the highest mark logged for it, live or replayed (claimscan reads
-- no further).
-- ARGV[1] MarkLogLength, ARGV[2] TTL ms, ARGV[3] session, ARGV[4] the
-- number k of topic/position pairs that follow, then the k pairs, then
-- triples mark, topic, position.
-- Live broadcasts: ARGV[3] is '' and k 0, and cur gets each publication's
-- position. Join (the marks of publications replayed to session ARGV[3],
-- of one or more topics): the log entries get s=<session>, and cur gets,
-- for each topic of the pairs (the topics replayed), its position there:
-- the position the node's subscription to the topic is at (its last
-- broadcast, or its start), never the replayed positions, which are older.
-- The position in cur is then at least the topic's replayed positions, as
-- it is at least every live one.
-- Marks already in the log (a retry after an ambiguous failure) are
-- skipped, so a retry neither fails nor writes a mark twice.
local function after(a, b)
  if #a ~= #b then
    return #a > #b
  end
  return a > b
end
local high = nil
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if #last > 0 then
  high = string.match(last[1][1], '^(%d+)')
end
local session = ARGV[3]
local k = tonumber(ARGV[4]) or 0
local first = 5 + 2 * k
for i = first, #ARGV, 3 do
  local m = ARGV[i]
  if high == nil or after(m, high) then
    if session == '' then
      redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], m .. '-1', 't', ARGV[i + 1], 'p', ARGV[i + 2])
    else
      redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], m .. '-1', 't', ARGV[i + 1], 'p', ARGV[i + 2], 's', session)
    end
    redis.call('HSET', KEYS[3], ARGV[i + 1], m)
    high = m
  end
  if session == '' then
    redis.call('HSET', KEYS[2], ARGV[i + 1], ARGV[i + 2])
  end
end
if session ~= '' then
  for i = 5, first - 1, 2 do
    redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
  end
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
redis.call('PEXPIRE', KEYS[3], ARGV[2])
return 1
