#!lua
-- truv fleet rate budget: one request's admission. A sliding log of the
-- requests admitted in the last window (Truv: 300 per minute per secret),
-- shared by every process of the secret; a priority is an admission
-- threshold (interactive: the whole budget; batch: the budget less a share
-- kept for interactive work). A shared 429 cooldown refuses everyone.
-- KEYS[1]    {ns}:rl   the log: sorted set, score = admission ms, member =
--                      a random id the caller draws (16 hex digits)
-- KEYS[2]    {ns}:cd   the cooldown: a string, the ms it ends at (PX-expiring)
-- ARGV       threshold (admit while fewer than this are in the window),
--            window_ms, now_ms ("" = Redis's clock, TIME: one clock for the fleet),
--            id
-- Returns    {1, in_window_after, now_us}        admitted (at now_us, Redis's clock, in us)
--            {0, wait_ms, "cooldown" | "budget"}  refused: try again in wait_ms
--            {2}                                 the id is in the log already (a
--                                                2^-64 chance): draw another
local threshold, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local now
if ARGV[3] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000   -- ms, to the microsecond
else
  now = tonumber(ARGV[3])
end
local function ms(x) return string.format('%.3f', x) end
local cd = tonumber(redis.call('GET', KEYS[2]) or nil)
if cd and cd > now then return { 0, math.ceil(cd - now), 'cooldown' } end
local from = now - window
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ms(from))
local c = redis.call('ZCARD', KEYS[1])
if c >= threshold then
  -- room for one more at this threshold when the (c - threshold + 1)-th oldest leaves
  local e = redis.call('ZRANGE', KEYS[1], c - threshold, c - threshold, 'WITHSCORES')
  return { 0, math.ceil(tonumber(e[2]) + window - now), 'budget' }
end
if redis.call('ZADD', KEYS[1], 'NX', ms(now), ARGV[4]) == 0 then return { 2 } end
redis.call('PEXPIRE', KEYS[1], string.format('%.0f', window + 60000))
return { 1, c + 1, math.floor(now * 1000) }   -- integer us: a reply's number is an integer
