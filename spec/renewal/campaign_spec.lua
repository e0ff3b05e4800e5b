-- A small soak campaign (see scripts/soak, `make soak`, for the long ones):
-- truv-renew over 100 cases against a sandbox injecting every fault at once
-- (latency, 5xx, resets before and after processing, truncated answers, a
-- spent refresh quota), then the same journal again with the faults off,
-- once the scheduled cases are due. The sandbox's accounting must agree with
-- the journal after each run: no case lost, nothing refreshed or linked
-- twice, every case on the route its seeded state calls for. The check
-- itself is then shown to catch each of those failures.
local soak = require "spec.support.soak"
local core = require "truv.core"

local CASES = 100
local SPENT = 3

describe("a campaign of every fault at once, then a rerun with the faults off", function()
  local c, first, final, codes

  lazy_setup(function()
    c = soak.campaign{ name = "campaign", cases = CASES, rng_seed = 2024, concurrency = 16,
                       run_timeout_s = 240 }
    c:spend_quota(SPENT)
    c:set_faults{ latency_ms = 1, latency_jitter_ms = 10, fault_5xx = 0.03, reset_before = 0.03,
                  reset_after = 0.03, truncate = 0.03 }
    codes = {}
    codes[1] = c:run()
    first = c:check()
    c:pass_time()
    codes[2] = c:run()
    final = c:check{ final = true }
  end)
  lazy_teardown(function()
    if c then c:close() end
  end)

  it("loses nothing, refreshes and links nothing twice, and routes every case as its state calls for",
     function()
    assert.same({ 0, 0 }, codes)
    assert.same({}, first.problems)
    assert.same({}, final.problems)
    for _, kind in ipairs{ "5xx", "reset_before", "reset_after", "truncate" } do
      assert.is_true(first.faults[kind] >= 5, kind .. " fired " .. first.faults[kind] .. " times")
    end
    assert.is_true(first.scheduled > SPENT, "no case was scheduled by the faults")
    assert.equal(0, final.lost)
    assert.equal(0, final.double_refreshes)
    assert.equal(0, final.orders_twice)
    -- the outage ended before the rerun: the provider's cases were refreshed
    -- once more, after their first refresh had failed and been routed to retry
    local down = 0
    for _, case in ipairs(c.list) do
      if case.state == "provider_down" then down = down + 1 end
    end
    assert.is_true(down > 0)
    assert.equal(down, final.retried_refreshes)
    -- the spent quotas stay spent: deferred, never refreshed
    local deferred = 0
    for route, n in pairs(final.routes) do
      if route:match("^defer/") then deferred = deferred + n end
    end
    assert.equal(SPENT, deferred)
    assert.equal(SPENT, final.scheduled)
    -- every other case was refreshed (an expired connection too: Truv's
    -- answer routes it)
    assert.equal(CASES - SPENT, final.refreshed_orders)
  end)

  it("is caught by the check when a case is refreshed twice, lost, linked behind its back or "
     .. "routed wrongly", function()
    local done, wrong
    for _, case in ipairs(c.list) do
      if case.state == "active" and not case.spent and not done then done = case end
      if case.state == "credentials" and not wrong then wrong = case end
    end
    -- a second refresh of a case that is done
    local status = c.sb:request("POST", "orders/" .. done.order_id .. "/",
                                { products = { done.product } })
    assert.equal(200, status)
    -- a verification order nobody recorded
    status = c.sb:request("POST", "orders/", { products = { "employment" }, first_name = "A",
                                               last_name = "B", order_number = done.order_number })
    assert.equal(201, status)
    -- a case gone from the journal, another on the wrong route
    local j = assert(core.journal_open(c.journal))
    local lost = c.list[#c.list]
    assert(j:delete(lost.case_id))
    assert(j:put(wrong.case_id, { route = "done", reason = "completed" }))
    j:close()

    local fig = c:check{ final = true }
    assert.equal(1, fig.double_refreshes)
    assert.equal(1, fig.lost)
    assert.equal(1, fig.wrong_routes)
    local text = table.concat(fig.problems, "\n")
    assert.matches(done.case_id .. ": order " .. done.order_id .. " refreshed again", text, 1, true)
    assert.matches(lost.case_id .. " is not in the journal", text, 1, true)
    assert.matches(done.case_id .. ": a verification order was made that the journal does not know",
                   text, 1, true)
    assert.matches(wrong.case_id .. " (credentials) routed done", text, 1, true)
  end)
end)
