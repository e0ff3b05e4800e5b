-- The cases a bulk renewal keeps in progress: as many as the rate budget
-- serves (rate x the time a case stays in progress / its requests, both
-- observed), bounded by memory_mb, not by the request slots; new cases take
-- only what the cases finishing leave of the budget; no 429 when the rate
-- is Truv's; a share of the rate left to the secret's other users.
local sandbox = require "spec.support.sandbox"
local files = require "spec.support.files"
local core = require "truv.core"
local renewal = require "truv.renewal"
local budget = require "truv.renewal.budget"

local function load_of(t)
  return { requests = t.requests or 0, queued = t.queued or 0, queued_new = t.queued_new or 0 }
end

describe("truv.renewal.budget", function()
  it("keeps rate x wait / requests per case in progress, with headroom, once cases left", function()
    local b = budget.new{ rate_per_minute = 600, memory_mb = 256 }
    assert.equal(b.cap, b:target())             -- nothing observed: only memory bounds it
    for _ = 1, 20 do b:finished(30, 4) end       -- 30 s in progress, 4 requests each
    -- 10 requests a second / 4 = 2.5 cases a second, 30 s each: 75, and a quarter more
    assert.equal(math.ceil(2.5 * 30 * budget.DEFAULTS.headroom), b:target())
    for _ = 1, 200 do b:finished(120, 4) end     -- the waits grew: more in progress
    assert.is_true(b:target() > 2.5 * 100)
  end)

  it("never keeps more than the memory budget holds", function()
    local b = budget.new{ rate_per_minute = 60000, memory_mb = 1 }
    for _ = 1, 20 do b:finished(600, 3) end
    assert.equal(math.floor(1024 / budget.DEFAULTS.case_kb), b:target())
    assert.equal(0, b:admit(b:target(), load_of{}))
  end)

  it("starts a case only while no new case's request waits for the budget", function()
    local b = budget.new{ rate_per_minute = 300 }
    assert.equal(1, b:admit(0, load_of{ queued = 5 }))          -- polls waiting: fine
    assert.equal(0, b:admit(0, load_of{ queued = 5, queued_new = 1 }))
    -- no rate limit: as many as the connection pool has room for
    local free = budget.new{ rate_per_minute = 0, concurrency = 8 }
    assert.equal(5, free:admit(0, load_of{ requests = 3 }))
  end)

  it("leaves the reserve of the rate to others", function()
    assert.equal(240, budget.new{ rate_per_minute = 300, reserve = 0.2 }.rate_per_minute)
    assert.equal(300, budget.new{ rate_per_minute = 300 }.rate_per_minute)
  end)
end)

describe("renewal.run sized from the budget", function()
  local dir
  before_each(function() dir = files.tmpdir("truv-budget") end)
  after_each(function() os.execute("rm -rf " .. files.quote(dir)) end)

  local function start(cases, rate_limit)
    local sb = sandbox.start{ args = { "--seed-cases", tostring(cases), "--rng-seed", "5",
      "--rate-limit", tostring(rate_limit), "--realtime", "--time-scale", "20",
      "--task-duration", "30", "--mix", "active=1", "--cases-out", dir .. "/cases.csv" } }
    finally(function() sb:shutdown() end)
    return sb, { client_id = sb.client_id, secret = sb.secret, base_url = sb.base_url }
  end

  local function throttled(stats)
    local n = 0
    for _, by in pairs(stats.requests.by_endpoint) do n = n + (by["429"] or 0) end
    return n
  end

  local function refreshed_once(stats, cases)
    local n = 0
    for order_id, o in pairs(stats.refresh.by_order) do
      assert.equal(1, o.refresh_orders, "order " .. order_id .. " refreshed twice")
      n = n + 1
    end
    assert.equal(cases, n)
  end

  it("keeps more cases in progress than request slots, at Truv's rate with no 429", function()
    local sb, client = start(16, 600)
    local most = 0
    local summary = assert(renewal.run{ cases = dir .. "/cases.csv", journal = dir .. "/j",
      quota = dir .. "/q.db", client = client, concurrency = 1, rate_per_minute = 600,
      poll = { interval_s = 0.5 }, load_interval_s = 0.05,
      on_load = function(l) if l.cases > most then most = l.cases end end })
    local stats = sb:stats()
    assert.equal(16, summary.routes.done)
    assert.equal(0, throttled(stats))
    refreshed_once(stats, 16)
    -- one request slot; the refreshes take 1.5 s: the budget keeps several waiting
    assert.is_true(most >= 3, "at most " .. most .. " cases were in progress")
    assert.equal(most, summary.in_progress.most)
    -- what polling learned is in the journal, for a resumed or later run:
    -- refreshes of 1.5 s, a first poll at 0.5 s to start with: later now
    local j = assert(core.journal_open(dir .. "/j"))
    local plan = core.decode(assert(j:meta_get("poll.plan")), "table")
    j:close()
    assert.is_true(plan.stages[1] > 0.5, "the first poll stayed at " .. plan.stages[1] .. " s")
  end)

  it("keeps no more in progress than memory_mb holds", function()
    local sb, client = start(6, 0)
    local most = 0
    local summary = assert(renewal.run{ cases = dir .. "/cases.csv", journal = dir .. "/j",
      quota = dir .. "/q.db", client = client, concurrency = 8, rate_per_minute = 0,
      memory_mb = 2 * budget.DEFAULTS.case_kb / 1024, poll = { interval_s = 0.2 },
      load_interval_s = 0.05, on_load = function(l) if l.cases > most then most = l.cases end end })
    assert.equal(6, summary.routes.done)
    refreshed_once(sb:stats(), 6)
    assert.equal(2, summary.in_progress.most)
    assert.is_true(most <= 2)
  end)

  it("sends no faster than the rate less the reserve", function()
    local sb, client = start(3, 0)
    local t0 = core.monotonic()
    local summary = assert(renewal.run{ cases = dir .. "/cases.csv", journal = dir .. "/j",
      quota = dir .. "/q.db", client = client, concurrency = 4, rate_per_minute = 600,
      rate_reserve = 0.5, poll = { interval_s = 0.2 } })
    local elapsed = core.monotonic() - t0
    assert.equal(3, summary.routes.done)
    local sent = sb:stats().requests.total
    -- 300 a minute: a request every 0.2 s at the most
    assert.is_true(elapsed >= (sent - 1) * 0.2 - 1e-3, sent .. " requests in " .. elapsed .. " s")
  end)
end)
