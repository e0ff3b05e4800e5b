#!lua
-- truv quota: record_count (see truv/quota.h): Truv lists refreshes of the
-- key at `times`; its count supersedes ours when larger. Of the times in the
-- window the newest `limit` count; when the key holds fewer entries in the
-- window (c), entries without a ticket are added at the oldest of those
-- times until it holds as many. Nothing in the window is removed.
-- KEYS[1]    {ns}:q:<key>
-- ARGV       now_ms, limit, window_ms, expire_s, t1_ms, t2_ms, ... (any order)
-- Returns    the number of entries added
local k = KEYS[1]
local now, limit, window = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local function ms(x) return string.format('%.0f', x) end
local from = now - window
local list = {}
for i = 5, #ARGV do
  local t = tonumber(ARGV[i])
  if t > from then list[#list + 1] = t end
end
if #list == 0 then return 0 end
table.sort(list)
while #list > limit do table.remove(list, 1) end       -- the newest `limit` count
local c = redis.call('ZCOUNT', k, '(' .. ms(from), '+inf')
if c >= #list then return 0 end
for i = 1, #list - c do
  local t, j = ms(list[i]), 0
  repeat j = j + 1 until redis.call('ZADD', k, 'NX', t, 'u:' .. t .. ':' .. j) == 1
end
redis.call('ZREMRANGEBYSCORE', k, '-inf', ms(from))
redis.call('EXPIRE', k, ARGV[4])
return #list - c
