-- No double billing: under a 20% rate of resets after the sandbox processed
-- the refresh (the failure that tempts a client to send again), 500
-- refreshes create exactly the refresh tasks the caller asked for.
local world = require "spec.support.world"

describe("refreshing under resets after processing", function()
  local w
  lazy_setup(function()
    w = world.new{ args = { "--seed-cases", "500", "--mix", "active=1", "--rng-seed", "11",
                            "--rate-limit", "0", "--fault-reset-after", "0.2",
                            "--fault-match", "POST /v1/orders/" } }
  end)
  lazy_teardown(function() if w then w:stop() end end)

  it("bills exactly the refreshes asked for, adopting the ones a reset hid", function()
    local asked_tasks, adopted, failed = 0, 0, {}
    for _, case in ipairs(w.cases) do
      local fresh, meta = w.client:refresh_order(case.order_id, { products = { case.product } })
      if fresh then
        asked_tasks = asked_tasks + meta.connections
        if meta.reconciled then adopted = adopted + 1 end
      else
        failed[#failed + 1] = tostring(meta)
      end
    end
    assert.same({}, failed)
    local stats = w.sb:stats()
    assert.is_true(stats.faults.reset_after >= 60, "the fault fired " .. stats.faults.reset_after)
    assert.is_true(adopted >= 60)
    assert.equal(asked_tasks, stats.refresh.tasks_created)
    assert.equal(asked_tasks, stats.refresh.billed)
    assert.equal(500, stats.refresh.order_refreshes)
    for order_id, s in pairs(stats.refresh.by_order) do
      assert.equal(1, s.refresh_orders, "order " .. order_id .. " refreshed twice")
    end
  end)
end)

describe("an ambiguous failure that provably created nothing", function()
  local w
  lazy_setup(function()
    w = world.new{ args = { "--seed-cases", "2", "--mix", "active=1", "--rate-limit", "0" } }
  end)
  lazy_teardown(function() if w then w:stop() end end)

  it("is sent again once reconciliation shows no refresh", function()
    local case = w.cases[1]
    -- a 5xx from the sandbox is answered before processing: nothing exists
    w.sb:faults{ fault_5xx = 1, match = "POST /v1/orders/" }
    local sends = 0
    local fresh, meta = w.client:refresh_order(case.order_id, { products = { case.product } }, {
      before_send = function(info)
        sends = info.sends
        if sends == 2 then w.sb:faults{ reset = true } end
      end,
    })
    assert.is_truthy(fresh, tostring(meta))
    assert.equal(2, sends)
    assert.equal(2, meta.sends)
    assert.is_nil(meta.reconciled)
    assert.equal(1, w.sb:stats().refresh.order_refreshes)
  end)

  it("is not sent again when the outcome cannot be read back", function()
    local case = w.cases[2]
    local before = w.sb:stats().refresh.order_refreshes
    w.sb:faults{ reset_after = 1, match = "POST /v1/orders/" }
    -- the read-back fails too: GETs of the original are reset before processing
    local c = w.client
    local get_order = c.get_order
    c.get_order = function(self, id)
      if id == case.order_id and self._reading_back then
        return nil, require("truv.errors").new("network", "reset", "scripted", { maybe_sent = true })
      end
      return get_order(self, id)
    end
    local res, err = c:refresh_order(case.order_id, { products = { case.product } }, {
      before_send = function() c._reading_back = true end,
    })
    c.get_order = nil
    c._reading_back = nil
    w.sb:faults{ reset = true }
    assert.is_nil(res)
    assert.equal("network", err.kind)
    assert.equal("unreconciled", err.code)
    assert.is_true(err.maybe_sent)
    assert.equal(before + 1, w.sb:stats().refresh.order_refreshes)
  end)
end)
