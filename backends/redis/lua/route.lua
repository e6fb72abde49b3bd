-- Adds a message to a live node's inbox.
-- KEYS[1] alive, KEYS[2] inbox (the node's slot)
-- ARGV[1] inbox limit (0: none), ARGV[2] type (m message, f forwarded
-- message, r release notice), ARGV[3] session, ARGV[4] data (for r: the
-- session record's version after the claim)
-- Returns 1 when added, 0 when the node is not alive (nothing is written,
-- no key is created), -1 when the inbox holds ARGV[1] unread entries.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
local limit = tonumber(ARGV[1])
if limit > 0 and redis.call('XLEN', KEYS[2]) >= limit then
  return -1
end
if not redis.call('XADD', KEYS[2], 'NOMKSTREAM', '*', 't', ARGV[2], 's', ARGV[3], 'd', ARGV[4]) then
  return 0
end
return 1
