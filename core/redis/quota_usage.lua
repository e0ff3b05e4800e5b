#!lua flags=no-writes
-- truv quota: usage (see truv/quota.h): entries in the window, and when the
-- key is full the instant a slot frees (what reserve would answer for it).
-- KEYS[1]    {ns}:q:<key>
-- ARGV       now_ms, limit, window_ms
-- Returns    {used} or {used, next_free_ms}
local k = KEYS[1]
local now, limit, window = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local open_from = '(' .. string.format('%.0f', now - window)
local c = redis.call('ZCOUNT', k, open_from, '+inf')
if c < limit then return { c } end
local e = redis.call('ZRANGEBYSCORE', k, open_from, '+inf', 'WITHSCORES', 'LIMIT', c - limit, 1)
return { c, tonumber(e[2]) + window }
