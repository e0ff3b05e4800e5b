--- How many cases a bulk renewal (truv.renewal) keeps in progress: as many
-- as the rate budget can serve, not as many as there are request slots.
--
--   local b = budget.new{ rate_per_minute = 300, reserve = 0.1, memory_mb = 256 }
--   b.rate_per_minute        what the run may send (the rate less the reserve)
--   b:target()               the cases in progress the budget calls for now
--   b:admit(active, load)    may one more case start? (load: scheduler:load())
--   b:finished(seconds, requests)   a case left the run after `seconds` in
--                            progress and `requests` requests
--   b:figures()              { target =, cap =, cases =, requests_per_case =,
--                              wait_s =, most = }
--
-- Little's law: a run that sends r requests a second, each case costing q
-- requests and staying w seconds in progress, finishes r / q cases a second
-- and holds r / q * w of them at once. q and w are observed in the run (the
-- cases that left it: the waits of the refreshes, the polls they took, the
-- time their requests waited for the budget), and the run keeps
-- `headroom` times that many in progress, never more than the memory
-- budget holds (memory_mb at case_kb a case). Before any case has left,
-- the memory budget is the only bound.
--
-- A case starts only when no new case's request waits for the budget: the
-- requests that finish cases (polls, the reads that route them; the
-- scheduler's prioritize()) go first, and new cases take what they leave.
-- With no rate limit, a case starts when the connection pool has room.
local setmetatable = setmetatable
local ceil, floor, max, min, huge = math.ceil, math.floor, math.max, math.min, math.huge

local _M = {}

_M.DEFAULTS = {
  reserve = 0,         -- share of the rate left to other users of the secret
  memory_mb = 256,     -- the cases in progress hold at most about this much
  case_kb = 100,       -- one case in progress (measured: 83 KB; bench/README.md)
  headroom = 2,        -- cases in progress over what Little's law asks
  weight = 0.05,       -- a finished case's weight in the running averages
}

_M.LIMITS = {
  reserve = { min = 0, max = 0.9, unit = "share of the rate" },
  memory_mb = { above = 0, max = 1048576, unit = "MB" },
}

local Budget = {}
Budget.__index = Budget

--- opts: rate_per_minute (0: no limit), reserve, memory_mb, concurrency
-- (the connection pool: with no rate limit, the cases started at once).
function _M.new(opts)
  local d = _M.DEFAULTS
  local rate = opts.rate_per_minute or 0
  local reserve = opts.reserve or d.reserve
  local memory_mb = opts.memory_mb or d.memory_mb
  return setmetatable({
    rate_per_minute = rate * (1 - reserve),
    concurrency = opts.concurrency or 1,
    cap = max(1, floor(memory_mb * 1024 / d.case_kb)),
    cases = 0,       -- cases that left the run
    wait_s = nil,    -- their running average time in progress
    per_case = nil,  -- and requests
    most = 0,        -- the most cases in progress at once
  }, Budget)
end

function Budget:target()
  if not self.wait_s or self.rate_per_minute <= 0 then return self.cap end
  local per_s = self.rate_per_minute / 60 / max(self.per_case, 1)
  return min(self.cap, max(1, ceil(per_s * self.wait_s * _M.DEFAULTS.headroom)))
end

--- How many more cases may start now (0 or more), with `active` in
-- progress and the scheduler's load.
function Budget:admit(active, load)
  local room = self:target() - active
  if room <= 0 then return 0 end
  if self.rate_per_minute > 0 then
    -- one at a time, and only while no new case's request waits
    if load.queued_new > 0 then return 0 end
    return 1
  end
  return max(0, min(room, self.concurrency - load.requests - load.queued))
end

function Budget:started(active)
  if active > self.most then self.most = active end
end

function Budget:finished(seconds, requests)
  local w = _M.DEFAULTS.weight
  self.cases = self.cases + 1
  if not self.wait_s then
    self.wait_s, self.per_case = seconds, requests
  else
    -- the first cases weigh as a plain mean, the later ones as a running one
    local k = max(w, 1 / self.cases)
    self.wait_s = self.wait_s + k * (seconds - self.wait_s)
    self.per_case = self.per_case + k * (requests - self.per_case)
  end
end

function Budget:figures()
  local t = self:target()
  return { target = t ~= huge and t or nil, cap = self.cap, cases = self.cases,
           requests_per_case = self.per_case, wait_s = self.wait_s, most = self.most }
end

return _M
