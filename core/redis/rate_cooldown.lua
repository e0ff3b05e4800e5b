#!lua
-- truv fleet rate budget: a 429 seen by one process pauses all of them.
-- Extends (never shortens) the shared cooldown to now + wait.
-- KEYS[1]    {ns}:cd
-- ARGV       wait_ms (Retry-After, or the client's fallback pause), now_ms ("" = TIME)
-- Returns    {ms the cooldown still lasts, now_ms}
local wait = tonumber(ARGV[1])
local now
if ARGV[2] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
else
  now = tonumber(ARGV[2])
end
local cur = tonumber(redis.call('GET', KEYS[1]) or nil)
if cur and cur >= now + wait then return { cur - now, now } end
if wait <= 0 then return { 0, now } end
redis.call('SET', KEYS[1], string.format('%.0f', now + wait), 'PX', string.format('%.0f', wait))
return { wait, now }
