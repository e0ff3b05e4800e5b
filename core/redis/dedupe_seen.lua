#!lua
-- truv dedupe: seen (see truv/dedupe.h): atomic add-if-absent of a webhook
-- id, by the caller's clock: a record whose expiry <= now is absent.
-- KEYS[1]    {ns}:s:<id>       a string: the record's expiry in ms
-- ARGV       now_ms, expiry_ms, px (Redis's own expiry, in ms of real time:
--            the ttl and a minute, so the record outlives its expiry)
-- Returns    1 first sighting (recorded), 0 duplicate (nothing changed)
local cur = redis.call('GET', KEYS[1])
if cur and tonumber(cur) > tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
