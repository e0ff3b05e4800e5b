-- Refresh tasks and the per-access_token refresh limit.
local sandbox = require "spec.support.sandbox"

local LIMIT_MESSAGE = "Refresh limit for the access_token exceeded"

local function fields(body)
  local out = {}
  for _, p in ipairs(body.error.extra["invalid-params"]) do out[p.field] = p.message end
  return out
end

local function pick(sb, pred)
  for _, c in ipairs(sb:cases()) do
    if pred(c) then return c, sb:connections(c.order_id) end
  end
end

describe("POST /v1/refresh/tasks/", function()
  local sb

  lazy_setup(function()
    sb = sandbox.start{ args = { "--seed-cases", "5", "--mix", "active=1" } }
  end)
  lazy_teardown(function() if sb then sb:shutdown() end end)

  it("creates a task on a known access_token: {task_id}", function()
    local _, conns = pick(sb, function() return true end)
    local status, body = sb:request("POST", "refresh/tasks/", { access_token = conns[1].access_token,
                                                                  product_type = "income" })
    assert.are.equal(200, status)
    assert.matches("^" .. string.rep("%x", 32) .. "$", body.task_id)
    local keys = 0
    for _ in pairs(body) do keys = keys + 1 end
    assert.are.equal(1, keys)
  end)

  it("takes product_type from the documented list, and a known access_token", function()
    local _, conns = pick(sb, function() return true end)
    local status, body = sb:request("POST", "refresh/tasks/", { access_token = conns[1].access_token,
                                                                product_type = "payroll" })
    assert.are.equal(400, status)
    assert.are.equal('"payroll" is not a valid choice.', fields(body).product_type)
    status, body = sb:request("POST", "refresh/tasks/", { product_type = "income" })
    assert.are.equal(400, status)
    assert.are.equal("This field is required.", fields(body).access_token)
    status, body = sb:request("POST", "refresh/tasks/", { access_token = "abc", product_type = "income" })
    assert.are.equal(400, status)
    assert.is_string(fields(body).access_token)
    status, body = sb:request("POST", "refresh/tasks/", { access_token = string.rep("f", 32),
                                                          product_type = "income" })
    assert.are.equal(400, status)
    assert.are.equal("Unknown access_token.", fields(body).access_token)
    for _, p in ipairs({ "income", "employment", "deposit_switch", "pll", "insurance", "transactions",
      "assets" }) do
      local _, c2 = pick(sb, function() return true end)
      sb:config{ refresh_limit = 0 }
      status = sb:request("POST", "refresh/tasks/", { access_token = c2[1].access_token, product_type = p })
      assert.are.equal(200, status, p)
    end
    sb:config{ refresh_limit = 3 }
  end)

  it("404s an unknown task", function()
    local status, body = sb:request("GET", "refresh/tasks/" .. string.rep("0", 32) .. "/")
    assert.are.equal(404, status)
    assert.are.same({ detail = "Not Found." }, body)
  end)
end)

describe("the refresh limit (initial + 3 per access_token per rolling 24 h)", function()
  local sb

  lazy_setup(function()
    sb = sandbox.start{ args = { "--seed-cases", "30", "--mix", "active=1", "--rate-limit", "0" } }
  end)
  lazy_teardown(function() if sb then sb:shutdown() end end)

  local used = {}
  local function fresh_case(pred)
    for _, c in ipairs(sb:cases()) do
      if not used[c.case_id] and (not pred or pred(c)) then
        used[c.case_id] = true
        return c, sb:connections(c.order_id)
      end
    end
    error("no case left")
  end

  local function task(token)
    return sb:request("POST", "refresh/tasks/", { access_token = token, product_type = "income" })
  end

  it("allows 4 task creations in 24 h, then answers 429 throttled with the exact text", function()
    local c, conns = fresh_case()
    local token = conns[1].access_token
    -- the seeded connection's own initial task is older than 24 h
    assert.are.equal(0, conns[1].refreshes_in_window)
    local first_at = sb:now()
    for i = 1, 4 do
      assert.are.equal(200, (task(token)), "task " .. i)
      sb:advance(60)
    end
    local before = sb:stats().refresh
    local status, body, headers = task(token)
    assert.are.equal(429, status)
    assert.are.same({ error = { code = "throttled", message = LIMIT_MESSAGE } }, body)
    assert.is_nil(headers["retry-after"])
    local after = sb:stats().refresh
    assert.are.equal(before.tasks_created, after.tasks_created)
    assert.are.equal(before.billed, after.billed)
    local key = sandbox.token_key(token)
    assert.are.same({ created = 4, billed = 4 }, after.by_access_token[key])
    -- the window rolls: the oldest task leaves 24 h after it was created
    sb:set_time(first_at + 86400 - 1)
    assert.are.equal(429, (task(token)))
    sb:set_time(first_at + 86400 + 1)
    assert.are.equal(200, (task(token)))
    assert.are.equal(429, (task(token)))
    local conn = sb:connections(c.order_id)[1]
    assert.are.equal(4, conn.refreshes_in_window)
    assert.are.equal(4, conn.window_limit)
    -- the task made 60 s after the first is the oldest one left: it frees the slot
    local t = first_at + 60 + 86400
    local whole = math.floor(t)
    assert.are.equal(os.date("!%Y-%m-%dT%H:%M:%S", whole) ..
                     string.format(".%06dZ", math.floor((t - whole) * 1e6 + 0.5)), conn.next_refresh_at)
  end)

  it("counts failed tasks too", function()
    local c, conns = fresh_case()
    sb:set_state{ order_id = c.order_id, state = "credentials" }
    for _ = 1, 4 do assert.are.equal(200, (task(conns[1].access_token))) end
    sb:advance(30)
    assert.are.equal(429, (task(conns[1].access_token)))
  end)

  it("counts each connection of an order refresh; creates nothing when one is spent", function()
    local c, conns = fresh_case(function(x) return #x.employers >= 2 and x.product ~= "assets" end)
    local product = c.product
    for _ = 1, 4 do assert.are.equal(200, (task(conns[2].access_token))) end
    local before = sb:stats().refresh
    local status, body = sb:request("POST", "orders/" .. c.order_id .. "/", { products = { product } })
    assert.are.equal(429, status)
    assert.are.equal(LIMIT_MESSAGE, body.error.message)
    local after = sb:stats().refresh
    assert.are.equal(before.tasks_created, after.tasks_created)
    assert.are.equal(before.order_refreshes, after.order_refreshes)
    local _, original = sb:request("GET", "orders/" .. c.order_id .. "/")
    assert.are.equal(sandbox.null, original.refresh_order)
    -- the other employer alone may still be refreshed
    status = sb:request("POST", "orders/" .. c.order_id .. "/", { products = { product },
                        employers = { { id = c.employers[1].id } } })
    assert.are.equal(200, status)
  end)

  it("order refreshes and direct tasks share one window per access_token", function()
    local c, conns = fresh_case(function(x) return #x.employers == 1 and x.product == "employment" end)
    for _ = 1, 2 do
      assert.are.equal(200, (sb:request("POST", "orders/" .. c.order_id .. "/",
        { products = { "employment" } })))
    end
    assert.are.equal(200, (task(conns[1].access_token)))
    assert.are.equal(200, (task(conns[1].access_token)))
    assert.are.equal(429, (sb:request("POST", "orders/" .. c.order_id .. "/",
      { products = { "employment" } })))
    local key = sandbox.token_key(conns[1].access_token)
    local stats = sb:stats().refresh
    assert.are.same({ created = 4, billed = 4 }, stats.by_access_token[key])
    assert.are.same({ refresh_orders = 2, tasks = 2 }, stats.by_order[c.order_id])
  end)

  it("counts the initial connection of a freshly connected order", function()
    local _, o = sb:request("POST", "orders/", { products = { "income" }, first_name = "A", last_name = "B",
                                                  employers = { { company_name = "Acme" } } })
    sb:complete_order{ order_id = o.id }
    sb:advance(20)
    for i = 1, 3 do
      assert.are.equal(200, (sb:request("POST", "orders/" .. o.id .. "/", { products = { "income" } })),
        "refresh " .. i)
    end
    local status, body = sb:request("POST", "orders/" .. o.id .. "/", { products = { "income" } })
    assert.are.equal(429, status)
    assert.are.equal(LIMIT_MESSAGE, body.error.message)
  end)

  it("can answer 400 incorrect_parameters instead, and be changed at run time", function()
    local _, conns = fresh_case()
    sb:config{ refresh_limit_status = 400, refresh_limit = 1 }
    finally(function() sb:config{ refresh_limit_status = 429, refresh_limit = 3 } end)
    assert.are.equal(200, (task(conns[1].access_token)))
    assert.are.equal(200, (task(conns[1].access_token)))
    local status, body = task(conns[1].access_token)
    assert.are.equal(400, status)
    assert.are.same({ error = { code = "incorrect_parameters", message = LIMIT_MESSAGE } }, body)
  end)
end)

describe("--strict", function()
  it("requires product_type, as the documentation marks it", function()
    local sb = sandbox.start{ args = { "--seed-cases", "1", "--mix", "active=1", "--strict" } }
    finally(function() sb:shutdown() end)
    local token = sb:connections(sb:cases()[1].order_id)[1].access_token
    local status, body = sb:request("POST", "refresh/tasks/", { access_token = token })
    assert.are.equal(400, status)
    assert.are.equal("This field is required.", fields(body).product_type)
    assert.are.equal(0, sb:stats().refresh.tasks_created)
    status = sb:request("POST", "refresh/tasks/", { access_token = token, product_type = "income" })
    assert.are.equal(200, status)
  end)
end)

describe("--refresh-limit-status 400 and --refresh-limit", function()
  it("are honoured from the command line", function()
    local sb = sandbox.start{ args = { "--seed-cases", "1", "--mix", "active=1", "--refresh-limit", "0",
                                       "--refresh-limit-status", "400" } }
    finally(function() sb:shutdown() end)
    local cfg = sb:config()
    assert.are.equal(0, cfg.refresh_limit)
    assert.are.equal(400, cfg.refresh_limit_status)
    local token = sb:connections(sb:cases()[1].order_id)[1].access_token
    for _ = 1, 8 do
      assert.are.equal(200, (sb:request("POST", "refresh/tasks/", { access_token = token,
        product_type = "income" })))
    end
  end)
end)
