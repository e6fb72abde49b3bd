-- Reads what a claim needs from the old owner's marks, atomically. The scan
-- of the log skips the topics whose highest mark (top) is not after M,
-- and stops once every other topic has its first mark after M, or at the
-- highest mark of those topics (MarkLogLength entries at most).
-- KEYS[1] log, KEYS[2] cur, KEYS[3] top (the old owner's slot)
-- ARGV[1] the cursor's mark M (> 0) in decimal, ARGV[2] the id (M+1)-1,
-- ARGV[3] the XRANGE start after mark M, "(M-1", ARGV[4] the claimed
-- session, then the session's topics.
-- Log entries with an s field are marks of publications Join replayed to
-- session s: they count for claims of s only. Entries without s are live
-- broadcasts.
-- Returns {0} when the log no longer holds every mark after M, {-1} when M
-- is past the owner's last mark (the owner never gave it); else
-- {1, p1, c1, p2, c2, ...}: per topic, the position of the first mark
-- after M for it ('' for none) and the owner's last position of it ('' for
-- none).
local function after(a, b)
  if #a ~= #b then
    return #a > #b
  end
  return a > b
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {-1}
end
local top = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if #top == 0 or after(ARGV[1], string.match(top[1][1], '^(%d+)')) then
  return {-1}
end
if #redis.call('XRANGE', KEYS[1], '-', ARGV[2], 'COUNT', 1) == 0 then
  return {0}
end
local session = ARGV[4]
local n = #ARGV - 4
local want = {}
local cur = {}
local left = 0
local stop = nil -- the highest mark to read: that of a wanted topic, '+' if unknown
for i = 1, n do
  local t = ARGV[i + 4]
  -- A topic without a last position was never broadcast nor replayed by
  -- the owner (Join sets it too), one whose highest mark is not after M
  -- has no mark after M: nothing to look for.
  cur[i] = redis.call('HGET', KEYS[2], t)
  if cur[i] then
    local hm = redis.call('HGET', KEYS[3], t)
    if not hm or after(hm, ARGV[1]) then
      want[t] = i
      left = left + 1
      if not hm then
        stop = '+'
      elseif stop ~= '+' and (stop == nil or after(hm, stop)) then
        stop = hm
      end
    end
  end
end
if stop and stop ~= '+' then
  stop = stop .. '-1'
end
local found = {}
local start = ARGV[3]
while left > 0 do
  local page = redis.call('XRANGE', KEYS[1], start, stop, 'COUNT', 256)
  for _, e in ipairs(page) do
    local f = e[2]
    -- marks.lua writes t, p and, for Join, s, in this order.
    local t, p, s = f[2], f[4], f[6]
    if f[1] ~= 't' or f[3] ~= 'p' or (f[5] and f[5] ~= 's') then
      t, p, s = nil, nil, nil
      for j = 1, #f, 2 do
        local k = f[j]
        if k == 't' then
          t = f[j + 1]
        elseif k == 'p' then
          p = f[j + 1]
        elseif k == 's' then
          s = f[j + 1]
        end
      end
    end
    local idx = t and want[t]
    if idx and not found[idx] and (s == nil or s == session) then
      found[idx] = p or ''
      left = left - 1
    end
  end
  if #page < 256 then
    break
  end
  start = '(' .. page[#page][1]
end
local out = {1}
for i = 1, n do
  out[#out + 1] = found[i] or ''
  out[#out + 1] = cur[i] or ''
end
return out
