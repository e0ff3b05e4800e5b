-- A case scheduled for a retry keeps what it knows: a refresh that may
-- exist is reconciled, a refresh that exists is waited on, and a link that
-- failed after a completed refresh is made again without a new refresh. The
-- next run never sends a second refresh for any of them.
local sandbox = require "spec.support.sandbox"
local files = require "spec.support.files"
local core = require "truv.core"
local renewal = require "truv.renewal"

describe("a scheduled case on the next run", function()
  local sb, dir, seeded, header

  lazy_setup(function()
    dir = files.tmpdir("truv-resume-points")
    sb = sandbox.start{ args = { "--seed-cases", "12", "--rng-seed", "41", "--rate-limit", "0",
      "--realtime", "--time-scale", "100", "--mix", "active=1,credentials=1",
      "--cases-out", dir .. "/all.csv" } }
    local text = files.slurp(dir .. "/all.csv")
    header = text:match("^([^\n]*\n)")
    seeded = {}
    for line in text:gmatch("[^\n]+\n?") do
      local id = line:match("^(case%-%d+),")
      if id then
        seeded[#seeded + 1] = { id = id, line = line, state = line:match(",([%w_]+),[^,]*,[^,]*$") }
      end
    end
  end)
  lazy_teardown(function()
    if sb then sb:shutdown() end
    if dir then os.execute("rm -rf " .. files.quote(dir)) end
  end)
  after_each(function() sb:faults{ reset = true } end)

  -- A cases file with the next unused seeded case in `state`.
  local function one_case(state)
    for _, s in ipairs(seeded) do
      if s.state == state and not s.taken then
        s.taken = true
        local path = dir .. "/" .. s.id .. ".csv"
        files.write(path, header .. s.line)
        local order_id = s.line:match("^[^,]*,([^,]*),")
        return path, s.id, order_id
      end
    end
    error("no seeded case left in state " .. state)
  end

  local function run(path, journal, logger, extra)
    local opts = {
      cases = path, journal = journal, rate_per_minute = 0, concurrency = 4,
      poll = { interval_s = 0.05, timeout_s = 30 },
      client = { client_id = sb.client_id, secret = sb.secret, base_url = sb.base_url,
                 logger = logger, refresh = { settle_s = 0.05 },
                 retry = { base_ms = 5, cap_ms = 20 } },
    }
    for k, v in pairs(extra or {}) do opts[k] = v end
    return renewal.run(opts)
  end

  -- The case as the journal has it; `due` makes a scheduled case due now.
  local function record(journal, case_id, due)
    local j = assert(core.journal_open(journal))
    local rec = j:get(case_id)
    if due and rec.state == "scheduled" then
      assert(j:put(case_id, { retry_at = core.now() - 1, not_before = core.null }))
    end
    j:close()
    return rec
  end

  local function refreshes(order_id)
    local s = sb:stats().refresh.by_order[order_id]
    return s and s.refresh_orders or 0
  end

  it("reconciles a refresh whose outcome could not be read back, instead of sending another", function()
    local path, case_id, order_id = one_case("active")
    local journal = dir .. "/unreconciled.journal"
    sb:faults{ reset_after = 1, match = "POST /v1/orders/" }
    local function logger(_, ev)
      -- the refresh was processed and its answer lost; now the read-back fails too
      if ev.event == "error" and ev.op == "refresh_order" then
        sb:faults{ reset = true, fault_5xx = 1, match = "GET /v1/orders/" }
      end
    end
    assert(run(path, journal, logger))
    local rec = record(journal, case_id, true)
    assert.equal("scheduled", rec.state)
    assert.equal("unreconciled", rec.reason)
    assert.equal(1, refreshes(order_id))
    sb:faults{ reset = true }
    assert(run(path, journal))
    rec = record(journal, case_id)
    assert.equal(1, refreshes(order_id))
    assert.equal("routed", rec.state)
    assert.equal("done", rec.route)
    local _, original = sb:request("GET", "orders/" .. order_id .. "/")
    assert.equal(original.refresh_order, rec.refresh_order_id)
  end)

  it("tries a refresh it cannot read back yet again unreconciled_retry_s later, sending nothing",
     function()
    local path, case_id, order_id = one_case("active")
    local journal = dir .. "/sending.journal"
    -- journaled as an earlier run left it, its refresh's POST maybe sent
    assert.is_nil(run(path, journal, nil, { interrupted = function() return "INT" end }))
    local j = assert(core.journal_open(journal))
    assert(j:put(case_id, { state = "sending", sent_at = core.now(), attempts = 1 }))
    j:close()
    sb:faults{ fault_5xx = 1, match = "GET /v1/orders/" }
    local t0 = core.now()
    assert(run(path, journal, nil, { unreconciled_retry_s = 120 }))
    local t1 = core.now()
    local rec = record(journal, case_id)
    assert.equal("scheduled", rec.state)
    assert.equal("retry", rec.route)
    assert.equal("unreconciled", rec.reason)
    assert.equal("reconcile", rec.resume)
    assert.is_true(rec.retry_at >= t0 + 120 and rec.retry_at <= t1 + 120, tostring(rec.retry_at))
    assert.equal(0, refreshes(order_id))
  end)

  it("waits on a refresh whose polling failed after a good POST, instead of sending another", function()
    local path, case_id, order_id = one_case("active")
    local journal = dir .. "/polling.journal"
    local function logger(_, ev)
      if ev.event == "response" and ev.op == "refresh_order" then
        sb:faults{ fault_5xx = 1, match = "GET /v1/orders/" }
      end
    end
    assert(run(path, journal, logger))
    local rec = record(journal, case_id, true)
    assert.equal("scheduled", rec.state)
    assert.equal("retry", rec.route)
    assert.equal(1, refreshes(order_id))
    sb:faults{ reset = true }
    assert(run(path, journal))
    rec = record(journal, case_id)
    assert.equal(1, refreshes(order_id))
    assert.equal("done", rec.route)
  end)

  it("waits again on a refresh that was not finished by the deadline", function()
    local path, case_id, order_id = one_case("active")
    local journal = dir .. "/unfinished.journal"
    assert(run(path, journal, nil, { poll = { interval_s = 0.05, timeout_s = 0.01 } }))
    local rec = record(journal, case_id, true)
    assert.equal("refresh_unfinished", rec.reason)
    sb:advance(60)
    assert(run(path, journal))
    assert.equal(1, refreshes(order_id))
    assert.equal("done", record(journal, case_id).route)
  end)

  it("makes a bridge link again without refreshing again", function()
    local path, case_id, order_id = one_case("credentials")
    local journal = dir .. "/bridge.journal"
    sb:faults{ fault_5xx = 1, match = "POST /v1/users/" }
    assert(run(path, journal, nil, { reverify = { mode = "bridge" } }))
    local rec = record(journal, case_id, true)
    assert.equal("scheduled", rec.state, tostring(rec.route) .. " " .. tostring(rec.reason)
                 .. " " .. tostring(rec.error))
    assert.equal(1, refreshes(order_id))
    sb:faults{ reset = true }
    local before = sb:stats().bridge_tokens.created
    assert(run(path, journal, nil, { reverify = { mode = "bridge" } }))
    rec = record(journal, case_id)
    assert.equal(1, refreshes(order_id))
    assert.equal("reverify", rec.route)
    assert.is_true(sb:stats().bridge_tokens.created > before)
  end)

  it("never makes a second verification order when the first one's fate is unknown", function()
    local path, case_id, order_id = one_case("credentials")
    local journal = dir .. "/order.journal"
    local number = files.slurp(path):match("(RC%-%d+)")
    -- the create may or may not have been processed: Truv gives no way to read it back
    sb:faults{ fault_5xx = 1, match = "POST /v1/orders/$" }
    assert(run(path, journal))
    sb:faults{ reset = true }
    record(journal, case_id, true)
    assert(run(path, journal))
    local rec = record(journal, case_id)
    assert.equal(1, refreshes(order_id))
    assert.equal("routed", rec.state)
    assert.equal("fix", rec.route)
    assert.equal("reverify_unconfirmed", rec.reason)
    assert.is_nil(sb:stats().orders.by_order_number[number])
  end)
end)
