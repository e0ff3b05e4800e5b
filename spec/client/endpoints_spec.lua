-- Every endpoint of the refresh workflow, over real HTTP against the sandbox.
local world = require "spec.support.world"
local truv = require "truv"

describe("the client against the sandbox", function()
  local w
  lazy_setup(function()
    w = world.new{ args = { "--seed-cases", "6", "--mix", "active=1", "--rng-seed", "7" } }
  end)
  lazy_teardown(function() if w then w:stop() end end)

  it("creates an order", function()
    local order, meta = w.client:create_order{
      products = { "income" }, first_name = "Ada", last_name = "Lovelace",
      email = "ada@example.com", phone = "(415) 555-0100", order_number = "ON-77",
      employers = { { company_name = "Acme" } },
    }
    assert.is_truthy(order, meta)
    assert.equal(201, meta.status)
    assert.equal("pending", order.employers[1].status)
    assert.equal("ON-77", order.order_number)
    assert.matches("^https://", order.share_url)
    assert.is_string(meta.request_id)
  end)

  it("gets an order as the whole document", function()
    local case = w.cases[1]
    local order = assert(w.client:get_order(case.order_id))
    assert.equal(case.order_id, order.id)
    assert.equal("completed", order.employers[1].status)
    assert.equal(truv.null, order.refresh_order)
    local e = order.employers[1]
    assert.is_string(e.access_token)
    assert.matches("^%d+%.%d%d$", e.employments[1].income)    -- amounts stay strings
  end)

  it("refreshes an order with every documented field", function()
    local case = w:case("active", "income")
    local original = assert(w.client:get_order(case.order_id))
    local fresh, meta = w.client:refresh_order(case.order_id, {
      products = { "employment" },
      employers = { { id = original.employers[1].id } },
      manager = { name = "Case Worker", email = "cw@agency.example" },
      email = "applicant@example.com", phone = "4155554193",
      include_recent_paystub = true,
    }, { order = original })
    assert.is_truthy(fresh, meta)
    assert.equal(case.order_id, fresh.initial_order)
    assert.equal(original.order_number, fresh.order_number)
    assert.not_equal(case.order_id, fresh.id)
    assert.equal(1, meta.connections)
    local again = assert(w.client:get_order(case.order_id))
    assert.equal(fresh.id, again.refresh_order)
  end)

  it("refreshes by suborder number and fetches the original itself", function()
    local case = w.cases[3]
    local original = assert(w.client:get_order(case.order_id))
    local fresh = assert(w.client:refresh_order(case.order_id, {
      products = { case.product },
      employers = { { suborder_number = original.employers[1].suborder_number } },
    }))
    assert.equal(case.order_id, fresh.initial_order)
  end)

  it("lists an order's events, refresh events included on request", function()
    local case = w:case("active", "income")
    local page = assert(w.client:list_order_events(case.order_id))
    assert.is_true(#page.results > 0)
    local all = assert(w.client:list_order_events(case.order_id, { include_refresh_orders = "true" },
                                                  { all = true }))
    local refreshes = 0
    for _, ev in ipairs(all.results) do
      if ev.is_refresh then refreshes = refreshes + 1 end
    end
    assert.is_true(refreshes > 0)
  end)

  it("creates and reads a refresh task", function()
    local case = w.cases[4]
    local conns = w:connections(case.order_id)
    local task = assert(w.client:create_refresh_task{ access_token = conns[1].access_token,
                                                       product_type = case.product })
    assert.matches("^%x+$", task.task_id)
    local st = assert(w.client:get_refresh_task(task.task_id))
    assert.equal(task.task_id, st.id)
    assert.equal("new", st.status)
    w:advance(60)
    assert.equal("done", assert(w.client:get_refresh_task(task.task_id)).status)
  end)

  it("creates a bridge token in update mode", function()
    local case = w.cases[5]
    local conns = w:connections(case.order_id)
    local tok = assert(w.client:create_bridge_token(case.user_id, {
      product_type = case.product, access_token = conns[1].access_token }))
    assert.matches("^%x+$", tok.bridge_token)
    assert.equal(conns[1].access_token, tok.access_token) -- Truv echoes it: update mode
  end)

  it("waits for a refresh by polling and routes it done", function()
    local case = w.cases[6]
    local fresh = assert(w.client:refresh_order(case.order_id, { products = { case.product } }))
    local result = assert(w.client:wait_for_refresh(fresh, { interval_s = 5 }))
    assert.is_true(result.finished)
    assert.equal("done", result.decision.route)
    assert.equal("completed", result.connections[1].status)
  end)
end)
