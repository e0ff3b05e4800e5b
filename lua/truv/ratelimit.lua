--- A rate budget shared by every process that talks to Truv with one secret
-- (Truv allows 300 requests per minute per secret): several gateway hosts
-- and a nightly batch draw from one budget kept in Redis, so that together
-- they are not throttled; and when one of them is (a 429), all of them wait
-- out its Retry-After.
--
--   local limiter = assert(require("truv.ratelimit").redis{
--     url = "redis://10.0.0.5:6379/0", namespace = "truv:" .. client_id,
--     per_minute = 300 })
--   local client = truv.new{ ..., ratelimit = limiter, priority = "interactive" }
--
-- The budget is a sliding log of admissions over `window` seconds (61 by
-- default: Truv counts arrivals and we count admissions, so a little
-- longer than Truv's minute absorbs latency jitter), kept and checked by
-- one script (core/redis/rate_acquire.lua) on Redis's own clock (one
-- clock for the fleet). Priorities are admission thresholds: "interactive"
-- (a gateway's refresh triggers) may take the whole budget, "batch" only
-- per_minute minus `reserved` (default 10 %: 270 of 300), so batch work
-- never starves the interactive and takes the rest.
--
--   limiter:acquire(priority)  --> true, at (the admission, Redis's clock)
--                              --> false, wait_s, why ("budget" or "cooldown")
--                              --> nil, err  (Redis failed: see fail_open)
--   limiter:wait(priority, sleep, max_wait_s)  --> true | nil, err
--     acquires, sleeping (with `sleep`, e.g. ngx.sleep or a scheduler's) the
--     exact wait the refusal names; past max_wait_s (default 30) it gives up
--     with err.kind "throttled" and err.retry_at
--   limiter:cooldown(seconds)  --> true, remaining_s, now | nil, err
--     a 429 was seen: every process's acquire is refused for that long
--     (extended, never shortened)
--
-- Failure: by default the limiter fails closed (no request is sent without
-- a slot; acquire returns nil, err with kind "internal", code
-- store_unavailable). fail_open = true admits instead while Redis is
-- unreachable (each process then runs on its own limits: give the
-- scheduler's rate per_minute / processes) and says so once per outage
-- through opts.log(level, message).
local core = require "truv.core"
local errors = require "truv.errors"
local redis = require "truv.store.redis"

local type, error, tostring, setmetatable, floor, max, min =
  type, error, tostring, setmetatable, math.floor, math.max, math.min
local format = string.format

local _M = {}

local Limiter = setmetatable({}, { __index = redis.Base })
Limiter.__index = Limiter

local PRIORITIES = { interactive = true, batch = true }

function Limiter:_threshold(priority)
  if priority == nil or priority == "interactive" then return self.per_minute end
  if priority == "batch" then return self.batch_threshold end
  error(format("bad argument #1 to 'acquire' (\"interactive\" or \"batch\" expected, got %s)",
               tostring(priority)), 3)
end

local function now_arg(self)
  return self.clock and format("%.0f", floor(self.clock() * 1000 + 0.5)) or ""
end

function Limiter:_failed(err)
  if type(err) == "table" then err.store = "ratelimit" end   -- what failed, for a batch
  if not self.fail_open then return nil, err end
  if not self.open_logged then
    self.open_logged = true
    if self.log then
      self.log("warn", "the fleet rate budget is unavailable (" .. tostring(err.message) ..
               "): admitting on this process's own limits until it is back")
    end
  end
  return true
end

function Limiter:acquire(priority)
  local threshold = self:_threshold(priority)
  for _ = 1, 3 do
    local r, err = self:_run("rate_acquire", self.keys,
                             { threshold, self.window_ms, now_arg(self), core.redis_ticket() })
    if not r then return self:_failed(err) end
    self.open_logged = false
    if r[1] == 1 then return true, r[3] / 1e6 end
    if r[1] == 0 then return false, r[2] / 1000, r[3] end
  end
  return nil, errors.new("internal", "store_unavailable",
                         "three random ids were all taken: the random source is broken")
end

function Limiter:wait(priority, sleep, max_wait)
  max_wait = max_wait or self.max_wait
  local waited = 0
  while true do
    local ok, wait, why = self:acquire(priority)
    if ok then return true end
    if ok == nil then return nil, wait end
    if waited + wait > max_wait then
      local retry_at = (self.clock or core.now)() + wait
      return nil, errors.new("throttled", why == "cooldown" and "fleet_cooldown" or "fleet_budget",
        format("the fleet's rate budget has no room for %.1f s (%s)", wait,
               why == "cooldown" and "Truv throttled one of its processes" or
               "every slot of the minute is taken"), { retry_at = retry_at })
    end
    -- a few ms of jitter so that waiting processes do not all wake at once
    local s = wait + (self.jitter and math.random() * 0.005 or 0)
    sleep(s)
    waited = waited + s
  end
end

function Limiter:cooldown(seconds)
  if type(seconds) ~= "number" or seconds ~= seconds or seconds < 0 then
    error("bad argument #1 to 'cooldown' (a number of seconds >= 0 expected)", 2)
  end
  local r, err = self:_run("rate_cooldown", { self.keys[2] },
                           { format("%.0f", min(seconds, 3600) * 1000), now_arg(self) })
  if not r then return self:_failed(err) end
  return true, r[1] / 1000, r[2] / 1000
end

--- Admissions in the window now (for metrics and tests).
function Limiter:in_window()
  local v, err = self:_cmd("ZCOUNT", self.keys[1], "(" .. format("%.0f",
    ((self.clock or core.now)() - self.window) * 1000), "+inf")
  if not v then return nil, err end
  return v
end

--- opts: url (or host, port, ...), namespace ("truv:<client id>"),
-- per_minute (300), reserved (the share only interactive work may use:
-- 0.1), window (61 s), max_wait (30 s), fail_open (false), log, and for
-- tests clock (seconds; the default is Redis's clock).
function _M.redis(opts)
  if type(opts) ~= "table" then error("bad argument #1 to 'redis' (options expected)", 2) end
  local per_minute = opts.per_minute or 300
  if type(per_minute) ~= "number" or per_minute ~= floor(per_minute) or per_minute < 1 then
    error("bad argument #1 to 'redis' ('per_minute' must be an integer >= 1)", 2)
  end
  local reserved = opts.reserved or 0.1
  if type(reserved) ~= "number" or reserved < 0 or reserved >= 1 then
    error("bad argument #1 to 'redis' ('reserved' must be a share from 0 to below 1)", 2)
  end
  local window = opts.window or 61
  if type(window) ~= "number" or window < 0.001 or window > 3600 then
    error("bad argument #1 to 'redis' ('window' must be seconds from 0.001 to 3600)", 2)
  end
  local self, err = redis.open(Limiter, opts, "rate budget", {
    per_minute = per_minute, window = window, window_ms = floor(window * 1000 + 0.5),
    batch_threshold = max(1, per_minute - floor(per_minute * reserved + 0.5)),
    max_wait = opts.max_wait or 30, fail_open = opts.fail_open == true, log = opts.log,
    clock = opts.clock, jitter = opts.jitter ~= false,
  })
  if not self then return nil, err end
  self.keys = { self.tag .. ":rl", self.tag .. ":cd" }
  self.kind = "redis"
  return self
end

_M.PRIORITIES = PRIORITIES
return _M
