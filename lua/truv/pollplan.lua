--- When to poll a refresh, learned from the completion times a run
-- observes (truv.wait's `plan` option; truv.renewal keeps one per journal).
--
--   local plan = pollplan.new{ interval_s = 2, max_interval_s = 30, state = saved,
--                              finished_share = 0.75 }
--   plan:pause(k, elapsed)          seconds to sleep before poll k (1, 2, ...),
--                                   `elapsed` seconds after the refresh was sent
--   plan:observe(k, elapsed, done)  what poll k, made `elapsed` seconds after
--                                   the send, saw: finished or not
--   plan:state()                    { stages = { s1, ... }, n = } to save (JSON)
--
-- Each poll comes when a share p (`finished_share`, 0.75) of the refreshes
-- it would find still unfinished have finished: the first at the p quantile
-- of the completion times observed, the next at that quantile of the ones
-- left, and so on. Polls per refresh then average 1 + (1 - p) + (1 - p)^2
-- + ... = 1 / p when the model holds: 1.33 at 0.75, 2 at 0.5 (the median,
-- where a poll is as likely to find the refresh finished as not). A batch
-- under Truv's rate limit is bound by its requests per case, and a later
-- poll costs only the wait, which the cases in progress absorb; so the
-- default trades some 8 s of a 30 s median's wait for a third fewer polls
-- (bench/README.md). Each stage's time is a quantile tracked from the polls
-- made at it (a stochastic approximation on its logarithm: a poll that finds
-- the refresh finished moves the time down by (1 - p) steps, one that does
-- not moves it up by p steps, so the time settles where p of them are finished),
-- never closer than a fifth to the stage before, and bounded: the first at
-- half the wait's timeout_s (at least 4 x max_interval_s), each later one
-- at most half a gap more than the gap before it (refreshes that never
-- finish in the run would otherwise push the stages without end). Past the last stage, the
-- pauses grow by half up to max_interval_s: the tail is bounded. A poll made
-- late (the rate held it back) that found the refresh finished says nothing
-- about the stage's time and is not counted, nor is one made well before
-- the stage's time that found it unfinished (many cases that planned their
-- polls before the stage moved would otherwise push it past the truth). Before anything is observed,
-- the stages are the fixed schedule's: interval_s, growing by half.
local exp, log, max, min = math.exp, math.log, math.max, math.min
local setmetatable, type, ipairs, tonumber = setmetatable, type, ipairs, tonumber

local _M = {}

_M.STAGES = 4          -- polls planned from what was observed; the tail grows after
_M.FINISHED_SHARE = 0.75  -- of the refreshes a poll reaches, the share it should find finished
_M.LIMITS = { finished_share = { min = 0.5, max = 0.95 } }
_M.STEP = 0.2          -- the logarithm's step while the stage has few observations
_M.STEP_SETTLED = 0.08 -- and once it has SETTLED of them
_M.SETTLED = 50
_M.SPREAD = 1.2        -- a stage at least this times the one before
_M.FIRST_MAX = 4      -- the first poll at most this many max_interval_s after the send
_M.LATE = 1.25         -- a poll made later than this times its stage is late

local Plan = {}
Plan.__index = Plan

local function fixed(interval, max_interval)
  local stages, t, gap = {}, 0, interval
  for k = 1, _M.STAGES do
    t = t + gap
    stages[k] = t
    gap = min(gap * 1.5, max_interval)
  end
  return stages
end

-- A saved state that is what state() writes, else nil.
local function valid(state)
  if type(state) ~= "table" or type(state.stages) ~= "table" then return nil end
  if #state.stages ~= _M.STAGES then return nil end
  for _, s in ipairs(state.stages) do
    if type(s) ~= "number" or s ~= s or s <= 0 or s > 7 * 86400 then return nil end
  end
  return state
end

--- opts: interval_s, max_interval_s, timeout_s (truv.wait's), state (a saved state;
-- ignored when it is not one), finished_share (_M.LIMITS; the caller
-- validates it).
function _M.new(opts)
  local interval, max_interval = opts.interval_s or 2, opts.max_interval_s or 30
  local share = opts.finished_share or _M.FINISHED_SHARE
  local saved = valid(opts.state)
  local stages, counts = {}, {}
  for k = 1, _M.STAGES do
    stages[k] = saved and saved.stages[k] or fixed(interval, max_interval)[k]
    counts[k] = saved and type(saved.n) == "table" and tonumber(saved.n[k]) or 0
  end
  local first_max = max(max_interval * _M.FIRST_MAX, (opts.timeout_s or 0) / 2)
  return setmetatable({ stages = stages, n = counts, max_interval = max_interval,
                        share = share, first_max = first_max, learned = saved ~= nil }, Plan)
end

function Plan:pause(k, elapsed)
  local s = self.stages
  if k <= #s then return max(0, s[k] - elapsed) end
  -- the tail: the last gap growing by half, bounded
  local gap = s[#s] - s[#s - 1]
  for _ = #s + 1, k do gap = gap * 1.5 end
  return min(gap, self.max_interval)
end

function Plan:observe(k, elapsed, done)
  local s = self.stages
  if k > #s then return end
  -- a poll says something of the stage's time only near it: finished
  -- well after it (held back by the rate, or planned for a stage since
  -- moved) or unfinished well before it, it is not counted
  if done and elapsed > s[k] * _M.LATE then return end
  if not done and elapsed * _M.LATE < s[k] then return end
  local step = self.n[k] >= _M.SETTLED and _M.STEP_SETTLED or _M.STEP
  self.n[k] = self.n[k] + 1
  s[k] = exp(log(s[k]) + (done and -step * (1 - self.share) or step * self.share))
  -- bounded: refreshes that never finish in the run would move the
  -- stages without end. The first poll comes within FIRST_MAX pauses of
  -- max_interval_s, each later stage at most half a gap more than the
  -- gap before it and max_interval_s after the one before
  s[1] = min(s[1], self.first_max)
  local gap = s[1]
  for i = 2, #s do
    local t = min(s[i], s[i - 1] + gap * 1.5)
    s[i] = max(t, s[i - 1] * _M.SPREAD)
    gap = s[i] - s[i - 1]
  end
  self.changed = true
end

function Plan:state()
  local st, n = {}, {}
  for k, v in ipairs(self.stages) do st[k], n[k] = v, self.n[k] end
  return { stages = st, n = n }
end

return _M
