-- truv.pollplan: when to poll a refresh, learned from the waits observed:
-- the first poll settles at the quantile where the share asked for has
-- finished (the median at 0.5), the next ones where that share of those
-- left have finished, so 1 / share polls a refresh; the tail is bounded,
-- and what was learned comes back from its saved state.
local pollplan = require "truv.pollplan"

-- Polls refreshes whose completion times are `times` (cycled) through
-- `plan` as truv.wait does; returns the polls they took.
local function polls_for(plan, times, n)
  local total = 0
  for i = 1, n do
    local t = times[(i - 1) % #times + 1]
    local k, elapsed = 0, 0
    repeat
      k = k + 1
      elapsed = elapsed + plan:pause(k, elapsed)
      local done = elapsed >= t
      plan:observe(k, elapsed, done)
    until done
    total = total + k
  end
  return total / n
end

-- completion times log-normal around a median of 30 s (spread 0.5), drawn
-- the same way every time
local TIMES = {}
math.randomseed(3)
for i = 1, 1000 do
  local u1, u2 = math.random(), math.random()
  TIMES[i] = 30 * math.exp(0.5 * math.sqrt(-2 * math.log(u1)) * math.cos(2 * math.pi * u2))
end

describe("truv.pollplan", function()
  it("starts from the fixed schedule: interval_s, growing by half", function()
    local plan = pollplan.new{ interval_s = 2, max_interval_s = 30 }
    assert.equal(2, plan:pause(1, 0))
    assert.equal(3, plan:pause(2, 2))
    assert.equal(4.5, plan:pause(3, 5))
  end)

  it("at a share of 0.5, settles its first poll near the median and polls about twice",
     function()
    local plan = pollplan.new{ interval_s = 2, max_interval_s = 30, finished_share = 0.5 }
    local early = polls_for(plan, TIMES, 200)
    local settled = polls_for(plan, TIMES, 800)
    local first = plan:state().stages[1]
    assert.is_true(first > 30 / 1.3 and first < 30 * 1.3, "first poll at " .. first .. " s")
    assert.is_true(settled < early, settled .. " polls settled, " .. early .. " learning")
    assert.is_true(settled <= 2.6, settled .. " polls a refresh")
  end)

  it("by default polls when three quarters have finished: about 1.33 polls a refresh", function()
    local plan = pollplan.new{ interval_s = 2, max_interval_s = 30 }
    polls_for(plan, TIMES, 200)
    local settled = polls_for(plan, TIMES, 800)
    -- the 3/4 quantile of a log-normal of median 30 s and spread 0.5:
    -- 30 * exp(0.5 * 0.674) = 42 s
    local first = plan:state().stages[1]
    assert.is_true(first > 42 / 1.25 and first < 42 * 1.25, "first poll at " .. first .. " s")
    local median = pollplan.new{ interval_s = 2, max_interval_s = 30, finished_share = 0.5 }
    polls_for(median, TIMES, 200)
    local at_median = polls_for(median, TIMES, 800)
    assert.is_true(settled <= 1.6, settled .. " polls a refresh")
    assert.is_true(settled < at_median * 0.8, settled .. " polls against " .. at_median
                   .. " at the median")
  end)

  it("bounds the tail: past its stages, pauses grow by half up to max_interval_s", function()
    local plan = pollplan.new{ interval_s = 20, max_interval_s = 30 }
    local s = plan:state().stages
    local gap = s[#s] - s[#s - 1]
    assert.equal(math.min(gap * 1.5, 30), plan:pause(#s + 1, s[#s]))
    assert.equal(30, plan:pause(#s + 10, 1e6))
  end)

  it("does not learn from a late poll that found the refresh finished", function()
    local plan = pollplan.new{ interval_s = 10, max_interval_s = 30 }
    local before = plan:state().stages[1]
    plan:observe(1, before * 3, true)          -- held back by the rate: it says nothing
    assert.equal(before, plan:state().stages[1])
    plan:observe(1, before * 3, false)         -- still unfinished later: later than thought
    assert.is_true(plan:state().stages[1] > before)
  end)

  it("starts from a saved state, and ignores one that is not", function()
    local plan = pollplan.new{ interval_s = 2, max_interval_s = 30 }
    polls_for(plan, TIMES, 300)
    local again = pollplan.new{ interval_s = 2, max_interval_s = 30, state = plan:state() }
    assert.same(plan:state(), again:state())
    assert.equal(plan:pause(1, 0), again:pause(1, 0))
    for _, bad in ipairs{ { stages = { 1, 2 } }, { stages = { 1, 2, 0 / 0, 4 } }, "x", 42 } do
      assert.equal(2, pollplan.new{ interval_s = 2, state = bad }:pause(1, 0))
    end
  end)
end)
