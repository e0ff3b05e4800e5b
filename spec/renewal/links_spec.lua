-- Verification links under resets after processing (the failure that
-- tempts a client to create again): every applicant gets at most one new
-- order, each order made is in the journal or its case is routed to a
-- person (its creation could not be confirmed), and a rerun makes none.
local sandbox = require "spec.support.sandbox"
local files = require "spec.support.files"
local core = require "truv.core"
local renewal = require "truv.renewal"

local CASES = 110

describe("re-verification links under resets", function()
  local sb, dir
  lazy_setup(function()
    dir = files.tmpdir("truv-links")
    sb = sandbox.start{ args = { "--seed-cases", tostring(CASES), "--rng-seed", "61",
      "--mix", "credentials=1", "--rate-limit", "0", "--realtime", "--time-scale", "100",
      "--fault-reset-after", "0.3", "--fault-match", "POST /v1/orders/$",
      "--cases-out", dir .. "/cases.csv" } }
  end)
  lazy_teardown(function()
    if sb then sb:shutdown() end
    if dir then os.execute("rm -rf " .. files.quote(dir)) end
  end)

  it("makes at most one verification order per case", function()
    local client = { client_id = sb.client_id, secret = sb.secret, base_url = sb.base_url }
    local function run()
      return assert(renewal.run{ cases = dir .. "/cases.csv", journal = dir .. "/run.journal",
                                 client = client, rate_per_minute = 0, concurrency = 16,
                                 poll = { interval_s = 0.05 } })
    end
    local summary = run()
    local stats = sb:stats()
    assert.is_true(stats.faults.reset_after >= 15, "the fault fired " .. stats.faults.reset_after)
    for number, n in pairs(stats.orders.by_order_number) do
      assert.equal(1, n, number .. " got " .. n .. " verification orders")
    end
    local j = assert(core.journal_open(dir .. "/run.journal"))
    local linked, unconfirmed = 0, 0
    for rec in j:each{} do
      assert.equal("routed", rec.state)
      if rec.route == "reverify" then
        assert.matches("^https://", rec.share_url)
        linked = linked + 1
      else
        assert.equal("fix", rec.route)
        assert.equal("reverify_unconfirmed", rec.reason)
        unconfirmed = unconfirmed + 1
      end
    end
    j:close()
    assert.equal(CASES, linked + unconfirmed)
    assert.equal(summary.routes.reverify, linked)
    -- a reset after processing: the unconfirmed orders exist, none twice
    assert.equal(CASES, stats.orders.created)
    assert.equal(stats.faults.reset_after, unconfirmed)
    -- the rerun leaves them to the person
    sb:faults{ reset = true }
    run()
    assert.equal(CASES, sb:stats().orders.created)
  end)
end)
