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

-- Creating a verification order or a bridge token is not billed as a
-- refresh, but a second one is a second link to the applicant: after a
-- reset that followed processing, libcurl would silently send the create
-- again if it went out on a reused connection. Every non-GET goes out on a
-- fresh connection, so the reset surfaces as an error and nothing is made
-- twice.
describe("creating under resets after processing", function()
  local N = 120
  local w
  lazy_setup(function()
    w = world.new{ args = { "--seed-cases", tostring(N), "--mix", "credentials=1",
                            "--rng-seed", "12", "--rate-limit", "0" } }
  end)
  lazy_teardown(function() if w then w:stop() end end)
  after_each(function() w.sb:faults{ reset = true } end)

  local function created_per(by)
    local twice = {}
    for k, n in pairs(by) do if n > 1 then twice[#twice + 1] = string.format("%s: %d", k, n) end end
    return twice
  end

  it("makes each order once, one call at a time (libcurl easy)", function()
    w.sb:reset_stats()
    w.sb:faults{ reset_after = 0.3, match = "POST /v1/orders/$" }
    local answered, failed = 0, 0
    for _, case in ipairs(w.cases) do
      -- the GET leaves a connection in the pool for the create to find
      assert(w.client:get_order(case.order_id))
      local doc, err = w.client:create_order{ products = { "income" }, first_name = case.first_name,
                                              last_name = case.last_name,
                                              order_number = case.order_number }
      if doc then
        answered = answered + 1
      else
        assert.equal("network", err.kind)
        assert.is_true(err.maybe_sent)
        failed = failed + 1
      end
    end
    local s = w.sb:stats()
    assert.is_true(s.faults.reset_after >= 20, "the fault fired " .. s.faults.reset_after)
    assert.same({}, created_per(s.orders.by_order_number))
    assert.equal(answered + failed, s.orders.created)
    assert.equal(s.faults.reset_after, failed)
  end)

  it("makes each order and bridge token once, many in flight (libcurl multi)", function()
    local scheduler = require "truv.scheduler"
    local truv = require "truv"
    w.sb:reset_stats()
    w.sb:faults{ reset_after = 0.3, match = "POST /v1/" }
    local sched = assert(scheduler.new{ concurrency = 8, rate_per_minute = 0 })
    local client = assert(truv.new{ client_id = w.sb.client_id, secret = w.sb.secret,
                                    base_url = w.sb.base_url, transport = sched:transport(),
                                    sleep = sched.sleep, quota = false })
    local failures = 0
    for _, case in ipairs(w.cases) do
      sched:spawn(function()
        local token = w:connections(case.order_id)[1].access_token
        for _ = 1, 2 do   -- two GETs leave pooled connections behind
          assert(client:get_order(case.order_id))
        end
        local doc = client:create_order{ products = { "income" }, first_name = case.first_name,
                                         last_name = case.last_name,
                                         order_number = case.order_number }
        local tok = client:create_bridge_token(case.user_id, { product_type = "income",
                                                              access_token = token })
        if not doc then failures = failures + 1 end
        if not tok then failures = failures + 1 end
      end)
    end
    sched:run()
    client:close()
    local s = w.sb:stats()
    assert.is_true(s.faults.reset_after >= 40, "the fault fired " .. s.faults.reset_after)
    assert.equal(s.faults.reset_after, failures)
    assert.same({}, created_per(s.orders.by_order_number))
    assert.same({}, created_per(s.bridge_tokens.by_user))
    assert.equal(N, s.orders.created)
    assert.equal(N, s.bridge_tokens.created)
  end)
end)
