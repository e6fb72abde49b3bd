-- Reads what a claim needs from the old owner's marks, atomically. The scan
-- of the log stops once every topic the owner ever broadcast has its first
-- mark after M, or at the end of the log (MarkLogLength entries at most).
-- KEYS[1] log, KEYS[2] cur (the old owner's slot)
-- ARGV[1] the cursor's mark M (> 0), ARGV[2] the id (M+1)-1, ARGV[3] the
-- XRANGE start after mark M, "(M-1", then the session's topics.
-- Returns {0} when the log no longer holds every mark after M; else
-- {1, p1, c1, p2, c2, ...}: per topic, the position of the first mark
-- after M for it ('' for none) and the owner's last position of it ('' for
-- none).
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {0}
end
if #redis.call('XRANGE', KEYS[1], '-', ARGV[2], 'COUNT', 1) == 0 then
  return {0}
end
local n = #ARGV - 3
local want = {}
local cur = {}
local left = 0
for i = 1, n do
  -- A topic without a last position was never broadcast by the owner: no
  -- mark to look for.
  cur[i] = redis.call('HGET', KEYS[2], ARGV[i + 3])
  if cur[i] then
    want[ARGV[i + 3]] = i
    left = left + 1
  end
end
local found = {}
local start = ARGV[3]
while left > 0 do
  local page = redis.call('XRANGE', KEYS[1], start, '+', 'COUNT', 256)
  for _, e in ipairs(page) do
    local f = e[2]
    local t, p
    for j = 1, #f, 2 do
      if f[j] == 't' then
        t = f[j + 1]
      elseif f[j] == 'p' then
        p = f[j + 1]
      end
    end
    local idx = t and want[t]
    if idx and not found[idx] then
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
