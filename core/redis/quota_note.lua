#!lua
-- truv quota: note (connection facts, see truv/quota.h): keeps the latest
-- instant per fact; an older one changes nothing. The reason goes with the
-- dead instant it came with.
-- KEYS[1]    {ns}:f:<key>      a hash: d = dead ms, r = its reason, a = alive ms,
--                              u = auth ms
-- ARGV       field ("d", "a" or "u"), at_ms, reason ("" for none), retention_s
-- Returns    1 when recorded, 0 for an older sighting
local k, f, at = KEYS[1], ARGV[1], tonumber(ARGV[2])
local cur = redis.call('HGET', k, f)
if cur and tonumber(cur) > at then return 0 end
redis.call('HSET', k, f, ARGV[2])
if f == 'd' then
  if ARGV[3] ~= '' then redis.call('HSET', k, 'r', ARGV[3]) else redis.call('HDEL', k, 'r') end
end
redis.call('EXPIRE', k, ARGV[4])
return 1
