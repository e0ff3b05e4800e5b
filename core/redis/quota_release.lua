#!lua
-- truv quota: release (see truv/quota.h, "release"): removes that ticket's
-- entries from those keys, and nothing else.
-- KEYS       {ns}:q:<key> ...
-- ARGV       ticket
-- Returns    the number of entries removed (0 for an unknown, released or
--            malformed ticket: never an entry without a ticket)
local t = ARGV[1]
if not string.match(t, '^%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x$') then return 0 end
local n = 0
for i = 1, #KEYS do n = n + redis.call('ZREM', KEYS[i], t) end
return n
