#!lua
-- truv quota: reserve (see truv/quota.h, "reserve"). Atomic across every key.
-- KEYS       {ns}:q:<key> ...  a connection's log each: a sorted set, score =
--                              the entry's time in ms, member = its ticket (16
--                              hex digits), or "u:<ms>:<i>" for an entry
--                              without one (record_limit, record_count)
-- ARGV       now_ms, limit, window_ms, expire_s, ticket (16 hex digits, random,
--            made by the caller: no counter to lose in a failover)
-- Returns    {1}                          admitted: one entry per distinct key
--            {0, not_before_ms, {i, ...}} refused, nothing written; i are the
--                                         positions (1-based, in KEYS) of the
--                                         full keys, each key once
--            {2}                          the ticket is on a key already (a
--                                         2^-64 chance): nothing written, the
--                                         caller draws another
-- Every read that could fail (a key of another type) comes before the first write.
local now, limit, window = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local ticket = ARGV[5]
local function ms(x) return string.format('%.0f', x) end
local from = now - window                  -- an entry is in the window iff t > from
local open_from = '(' .. ms(from)
local logs, seen, spent, not_before, taken = {}, {}, {}, nil, false
for i = 1, #KEYS do
  local k = KEYS[i]
  if not seen[k] then
    seen[k] = true
    logs[#logs + 1] = k
    local c = redis.call('ZCOUNT', k, open_from, '+inf')
    if c >= limit then
      -- the (c - limit + 1)-th oldest in the window leaves at its t + window
      local e = redis.call('ZRANGEBYSCORE', k, open_from, '+inf', 'WITHSCORES',
                           'LIMIT', c - limit, 1)
      local free_at = tonumber(e[2]) + window
      if not not_before or free_at > not_before then not_before = free_at end
      spent[#spent + 1] = i
    elseif redis.call('ZSCORE', k, ticket) then
      taken = true
    end
  end
end
if not_before then return { 0, not_before, spent } end
if taken then return { 2 } end
local stamp = ms(now)
for _, k in ipairs(logs) do
  redis.call('ZADD', k, stamp, ticket)
  redis.call('ZREMRANGEBYSCORE', k, '-inf', ms(from))   -- what left the window
  redis.call('EXPIRE', k, ARGV[4])
end
return { 1 }
