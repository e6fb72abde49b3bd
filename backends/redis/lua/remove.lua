-- Deletes a session record owned by the node.
-- KEYS[1] session; ARGV[1] node
-- Returns 1 when deleted, 0 when missing, -1 when another node owns it.
local o = redis.call('HGET', KEYS[1], 'o')
if not o then
  return 0
end
if o ~= ARGV[1] then
  return -1
end
redis.call('DEL', KEYS[1])
return 1
