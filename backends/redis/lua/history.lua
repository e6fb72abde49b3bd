-- Reads a topic's numbering and publications for History.
-- KEYS[1] topic stream, KEYS[2] the topic's meta (same slot; see
-- publish.lua: e epoch, o offset of the last publication, s id of the
-- epoch's first entry)
-- ARGV[1] Since's offset ('' for no Since), ARGV[2] Since's epoch,
-- ARGV[3] limit (negative: no limit; 0: none), ARGV[4] '1' for newest
-- first, ARGV[5] a new epoch (unique, never used before), for a stream
-- whose meta has no epoch
-- Returns {offset, epoch} then, per publication in the order asked for,
-- id, offset, namespace, exclude, data. {'0', ''} when the stream does not
-- exist: its history is lost, or it never had one, and its next
-- publication (or Subscribe) starts a new epoch.
--
-- Within an epoch offsets are dense, and the stream's newest entries are
-- the epoch's: the entry of offset k is the (o-k+1)-th newest, so the
-- entries after offset N are the newest o-N, and no read goes beyond the
-- epoch's o newest entries (nor, as the stream holds no more, beyond
-- HistoryLength and the slack of MAXLEN ~). An entry read whose o is not
-- in the range asked for (or that has none: it is older than the
-- numbering) is skipped.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'0', ''}
end
local meta = redis.call('HMGET', KEYS[2], 'e', 'o', 's')
local epoch, top, first = meta[1], tonumber(meta[2]) or 0, meta[3]
if not epoch then
  -- The meta was lost without the stream: a new epoch, as Subscribe and
  -- Publish would start, with no publication yet.
  epoch, top, first = ARGV[5], 0, nil
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[2], 'e', epoch)
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl > 0 then
    redis.call('PEXPIRE', KEYS[2], ttl)
  end
end
-- Numbers go to Redis as decimal integers ('%.0f': tostring would write
-- large ones with an exponent).
local function int(v)
  return string.format('%.0f', v)
end
local out = {int(top), epoch}
local limit = tonumber(ARGV[3]) or 0
local reverse = ARGV[4] == '1'
local since = nil
if ARGV[1] ~= '' then
  since = tonumber(ARGV[1])
end
if limit == 0 or top == 0 or (since and ARGV[2] ~= epoch) then
  return out
end
local left = limit -- publications still wanted, at most the epoch's
if limit < 0 or limit > top then
  left = top
end

-- emit adds an entry whose offset lies in [lo, hi] to out, and skips any
-- other.
local function emit(e, lo, hi)
  local f = e[2]
  local o, ns, x, d
  for i = 1, #f, 2 do
    local k = f[i]
    if k == 'o' then
      o = f[i + 1]
    elseif k == 'ns' then
      ns = f[i + 1]
    elseif k == 'x' then
      x = f[i + 1]
    elseif k == 'd' then
      d = f[i + 1]
    end
  end
  local v = tonumber(o)
  if not v or v < lo or v > hi then
    return
  end
  out[#out + 1] = e[1]
  out[#out + 1] = o
  out[#out + 1] = ns or ''
  out[#out + 1] = x or ''
  out[#out + 1] = d or ''
  left = left - 1
end

if not since and not reverse and first then
  -- The oldest kept: from the epoch's first entry (or the oldest kept
  -- after it, if it was trimmed).
  local es = redis.call('XRANGE', KEYS[1], first, '+', 'COUNT', int(left))
  for _, e in ipairs(es) do
    emit(e, 1, top)
  end
  return out
end

-- The others read the newest entries, newest first.
local lo, hi, count = 1, top, top
if since then
  if reverse then
    -- Before Since: skip the entries from Since up to the newest.
    hi = math.min(since - 1, top)
    if hi < 1 then
      return out
    end
    count = math.min(top - hi + left, top)
  else
    -- After Since: the newest top-Since entries.
    if since >= top then
      return out
    end
    lo = since + 1
    count = top - since
  end
elseif reverse then
  count = left
end
local es = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', int(count))
if reverse then
  for _, e in ipairs(es) do
    if left == 0 then
      break
    end
    emit(e, lo, hi)
  end
else
  -- Oldest first: the entries read, from the end.
  for i = #es, 1, -1 do
    if left == 0 then
      break
    end
    emit(es[i], lo, hi)
  end
end
return out
