-- Publishes to a topic stream and trims its history.
-- KEYS[1] topic stream, KEYS[2] the bucket's last id, KEYS[3] the topic's
-- meta hash (same slot)
-- ARGV[1] HistoryLength, ARGV[2] HistoryAge ms, ARGV[3] key TTL ms,
-- ARGV[4] namespace, ARGV[5] exclude, ARGV[6] data, ARGV[7] TopicBuckets,
-- ARGV[8] the bucket's index, ARGV[9] a new epoch (unique, never used
-- before), for a topic that has none
--
-- Ids: positions are unique across all topics. The script picks the id
-- itself: the millisecond part from Redis' clock (never below the last id
-- of the bucket or of the stream), the sequence part the smallest one above
-- the bucket's last id that is congruent to the bucket's index modulo
-- TopicBuckets. Every topic of a bucket takes its ids from one increasing
-- sequence (KEYS[2]), and buckets never share a sequence number.
--
-- pv: every entry records the id of the entry generated before it in its
-- stream, which Replay uses to tell whether anything after a position was
-- trimmed away (Redis 7 does not record trimmed ids). The newest entry
-- always survives trimming, so the last entry is the predecessor; in a
-- stream whose entries were all trimmed (or one Subscribe created empty)
-- it is the stream's last generated id. A stream that did not exist (it
-- expired, or Redis lost it) may have had entries before: pv is then
-- <ms>-0, ms being the new entry's, so that a replay from any earlier
-- position but 0-0 is a gap.
--
-- Sequence 0 is never an entry's: bucket 0 uses TopicBuckets, 2 x
-- TopicBuckets… An id <ms>-0 is the start of a stream (the last id of a
-- stream Subscribe created, or the pv above): Replay from position 0-0
-- ("before any publication") then reports no gap, since nothing can tell a
-- new topic from one whose stream was lost.
--
-- Offsets (History): the meta hash holds e (the epoch), o (the offset of
-- the last publication) and s (the id of the epoch's first entry). The
-- entry gets o+1 as its field o. A stream that does not exist lost its
-- history (or never had one): the meta is deleted first, so the numbering
-- starts over at 1 in a new epoch, ARGV[9], as it does for a meta without
-- e (the meta was lost without the stream: a meta is never written
-- without e). The meta gets the stream's TTL. The entry is added before
-- the meta changes, so a failed XADD leaves the numbering as it was.
--
-- The age limit is measured on Redis' clock: the new id's millisecond part
-- minus HistoryAge.
-- Returns the new entry's id.
local function parse(id)
  local a, b = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(a), tonumber(b)
end
local function later(ams, aseq, bms, bseq)
  return ams > bms or (ams == bms and aseq > bseq)
end

local buckets = tonumber(ARGV[7])
local k = tonumber(ARGV[8])
local lms, lseq = 0, 0
local last = redis.call('GET', KEYS[2])
if last then
  lms, lseq = parse(last)
end
local pv
if redis.call('EXISTS', KEYS[1]) == 1 then
  local e = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
  if #e > 0 then
    pv = e[1][1]
  else
    local info = redis.call('XINFO', 'STREAM', KEYS[1])
    for i = 1, #info, 2 do
      if info[i] == 'last-generated-id' then
        pv = info[i + 1]
      end
    end
  end
  local pms, pseq = parse(pv)
  if later(pms, pseq, lms, lseq) then
    lms, lseq = pms, pseq
  end
else
  redis.call('DEL', KEYS[3])
end
local meta = redis.call('HMGET', KEYS[3], 'e', 'o')
local epoch = meta[1]
local offset = '1'
if epoch then
  offset = string.format('%.0f', (tonumber(meta[2]) or 0) + 1)
end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local first = k
if first == 0 then
  first = buckets
end
local ms, seq
if now > lms then
  ms, seq = now, first
elseif lseq >= 2 ^ 52 then
  ms, seq = lms + 1, first
else
  ms = lms
  seq = lseq - (lseq % buckets) + k
  if seq <= lseq then
    seq = seq + buckets
  end
end
local id = string.format('%.0f-%.0f', ms, seq)
if not pv then
  pv = string.format('%.0f-0', ms)
end
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], id,
  'pv', pv, 'o', offset, 'ns', ARGV[4], 'x', ARGV[5], 'd', ARGV[6])
redis.call('SET', KEYS[2], id, 'PX', ARGV[3])
if not epoch then
  redis.call('DEL', KEYS[3])
  redis.call('HSET', KEYS[3], 'e', ARGV[9], 'o', offset, 's', id)
elseif offset == '1' then
  redis.call('HSET', KEYS[3], 'o', offset, 's', id)
else
  redis.call('HSET', KEYS[3], 'o', offset)
end
local minms = ms - tonumber(ARGV[2])
if minms > 0 then
  redis.call('XTRIM', KEYS[1], 'MINID', '~', string.format('%.0f', minms))
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PEXPIRE', KEYS[3], ARGV[3])
return id
