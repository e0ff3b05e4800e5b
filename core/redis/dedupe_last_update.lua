#!lua
-- truv dedupe: last_update (see truv/dedupe.h): atomic compare-and-set of an
-- object's updated_at: not older (greater or equal) is recorded.
-- KEYS[1]    {ns}:o:<object key>   a string: updated_at in ms
-- ARGV       updated_at_ms, ex_s (30 days: nothing is redelivered later)
-- Returns    1 newer or equal (recorded), 0 older (nothing changed)
local cur = redis.call('GET', KEYS[1])
if cur and tonumber(ARGV[1]) < tonumber(cur) then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1
