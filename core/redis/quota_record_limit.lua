#!lua
-- truv quota: record_limit (see truv/quota.h): Truv refused the refresh as
-- over its limit. Entries before now go; entries at now without a ticket are
-- added until the key holds `limit`.
-- KEYS[1]    {ns}:q:<key>
-- ARGV       now_ms, limit, expire_s
-- Returns    1
local k, limit = KEYS[1], tonumber(ARGV[2])
local now = string.format('%.0f', tonumber(ARGV[1]))
redis.call('ZREMRANGEBYSCORE', k, '-inf', '(' .. now)
local c, i = redis.call('ZCARD', k), 0
while c < limit do
  i = i + 1
  c = c + redis.call('ZADD', k, 'NX', now, 'u:' .. now .. ':' .. i)
end
redis.call('EXPIRE', k, ARGV[3])
return 1
