-- The /_sandbox/ control endpoints: stats, connections, config, orders/complete.
local sandbox = require "spec.support.sandbox"

local function fields(body)
  local out = {}
  for _, p in ipairs(body.error.extra["invalid-params"]) do out[p.field] = p.message end
  return out
end

describe("GET /_sandbox/stats", function()
  local sb, cases

  lazy_setup(function()
    sb = sandbox.start{ args = { "--seed-cases", "10", "--mix", "active=1", "--refresh-limit", "0" } }
    cases = sb:cases()
  end)
  lazy_teardown(function() if sb then sb:shutdown() end end)

  it("counts /v1/ requests by endpoint template and status", function()
    sb:reset_stats()
    local id = cases[1].order_id
    sb:request("GET", "orders/" .. id .. "/")
    sb:request("GET", "orders/" .. id .. "/")
    sb:request("GET", "orders/" .. string.rep("0", 32) .. "/")
    sb:request("GET", "orders/" .. id .. "/", nil, { ["X-Access-Secret"] = false })
    sb:request("POST", "orders/", {})
    sb:request("GET", "orders/" .. id .. "/events/")
    sb:request("GET", "nowhere/")
    local s = sb:stats()
    assert.are.equal(7, s.requests.total)
    local by = s.requests.by_endpoint
    assert.are.same({ ["200"] = 2, ["404"] = 1, ["401"] = 1 }, by["GET /v1/orders/{id}/"])
    assert.are.same({ ["400"] = 1 }, by["POST /v1/orders/"])
    assert.are.same({ ["200"] = 1 }, by["GET /v1/orders/{id}/events/"])
    assert.are.same({ ["404"] = 1 }, by["GET /v1/(unknown)"])
    -- sandbox calls appear under their own keys only
    assert.are.equal(1, by["POST /_sandbox/stats/reset"]["200"])
  end)

  it("accounts refresh tasks per access_token (sha256 prefix) and per original order", function()
    sb:reset_stats()
    local c
    for _, x in ipairs(cases) do if x.product ~= "assets" and #x.employers == 2 then c = x break end end
    local conns = sb:connections(c.order_id)
    sb:request("POST", "orders/" .. c.order_id .. "/", { products = { c.product } })
    sb:request("POST", "refresh/tasks/", { access_token = conns[1].access_token, product_type = "income" })
    local r = sb:stats().refresh
    assert.are.equal(3, r.tasks_created)
    assert.are.equal(3, r.billed)
    assert.are.equal(1, r.order_refreshes)
    assert.are.same({ created = 2, billed = 2 }, r.by_access_token[sandbox.token_key(conns[1].access_token)])
    assert.are.same({ created = 1, billed = 1 }, r.by_access_token[sandbox.token_key(conns[2].access_token)])
    assert.are.same({ refresh_orders = 1, tasks = 2 }, r.by_order[c.order_id])
    for key in pairs(r.by_access_token) do assert.matches("^" .. string.rep("%x", 16) .. "$", key) end
  end)

  it("counts created orders per order_number and bridge tokens per user", function()
    sb:reset_stats()
    local c = cases[4]
    local body = { products = { "income" }, first_name = "A", last_name = "B", order_number = "N-1" }
    assert.are.equal(201, (sb:request("POST", "orders/", body)))
    assert.are.equal(201, (sb:request("POST", "orders/", body)))
    body.order_number = "N-2"
    assert.are.equal(201, (sb:request("POST", "orders/", body)))
    body.first_name = nil
    assert.are.equal(400, (sb:request("POST", "orders/", body)))
    local token = sb:connections(c.order_id)[1].access_token
    local tok = { product_type = "income", access_token = token }
    assert.are.equal(200, (sb:request("POST", "users/" .. c.user_id .. "/tokens/", tok)))
    assert.are.equal(200, (sb:request("POST", "users/" .. c.user_id .. "/tokens/", tok)))
    local s = sb:stats()
    assert.are.same({ created = 3, by_order_number = { ["N-1"] = 2, ["N-2"] = 1 } }, s.orders)
    assert.are.same({ created = 2, by_user = { [c.user_id] = 2 } }, s.bridge_tokens)
    sb:reset_stats()
    s = sb:stats()
    assert.are.same({ created = 0, by_order_number = {} }, s.orders)
    assert.are.same({ created = 0, by_user = {} }, s.bridge_tokens)
  end)

  it("counts the connections it accepted, not the requests they carried", function()
    sb:reset_stats()
    local id = cases[1].order_id
    local get = "GET /v1/orders/" .. id .. "/ HTTP/1.1\r\nHost: 127.0.0.1\r\n" ..
                "X-Access-Client-Id: " .. sb.client_id .. "\r\nX-Access-Secret: " .. sb.secret ..
                "\r\n"
    -- three requests on one kept-alive connection, the last closing it
    local text = sandbox.raw(sb.port, get .. "\r\n" .. get .. "\r\n" .. get ..
                             "Connection: close\r\n\r\n")
    local _, answers = text:gsub("HTTP/1%.1 200", "")
    assert.are.equal(3, answers)
    local s = sb:stats()
    assert.are.equal(3, s.requests.by_endpoint["GET /v1/orders/{id}/"]["200"])
    -- that connection and the one asking
    assert.are.same({ accepted = 2 }, s.connections)
    sb:reset_stats()
    assert.are.same({ accepted = 1 }, sb:stats().connections)
  end)

  it("is zeroed by POST /_sandbox/stats/reset without touching state", function()
    local c = cases[3]
    local _, before = sb:request("GET", "orders/" .. c.order_id .. "/")
    sb:reset_stats()
    local s = sb:stats()
    assert.are.equal(0, s.requests.total)
    assert.are.equal(0, s.refresh.tasks_created)
    assert.are.same({}, s.refresh.by_order)
    assert.are.same({ reset_before = 0, reset_after = 0, truncate = 0, stall = 0, ["5xx"] = 0 }, s.faults)
    assert.are.equal(0, s.webhooks.sent)
    local _, after = sb:request("GET", "orders/" .. c.order_id .. "/")
    assert.are.same(before, after)
  end)
end)

describe("connections and their states", function()
  local sb, cases

  lazy_setup(function()
    sb = sandbox.start{ args = { "--seed-cases", "6", "--mix", "active=1" } }
    cases = sb:cases()
  end)
  lazy_teardown(function() if sb then sb:shutdown() end end)

  it("lists an order's connections with tokens, state and window", function()
    local c = cases[1]
    local res = sb:admin("GET", "connections?order_id=" .. c.order_id)
    assert.are.equal(c.order_id, res.order_id)
    local n = #c.employers + #c.financial_accounts
    assert.are.equal(n, #res.connections)
    local k = res.connections[1]
    for _, f in ipairs({ "kind", "suborder_id", "suborder_number", "access_token", "link_id", "user_id",
                         "product", "provider", "state", "created_at", "authenticated_at", "oauth",
                         "provider_down_until", "refreshes_in_window", "window_limit",
                         "next_refresh_at", "tasks_created" }) do
      assert.is_not_nil(k[f], f)
    end
    assert.are.equal(4, k.window_limit)
    assert.are.equal(sandbox.null, k.next_refresh_at)
    assert.are.equal(c.user_id, k.user_id)
    assert.are.equal(c.employers[1] and c.employers[1].id or c.financial_accounts[1].id, k.suborder_id)
    local status = sb:request("GET", "/_sandbox/connections?order_id=" .. string.rep("0", 32))
    assert.are.equal(404, status)
    status = sb:request("GET", "/_sandbox/connections")
    assert.are.equal(404, status)
  end)

  it("lists a user's connections (newest first) and a single link's", function()
    local c = cases[1]
    local by_order = sb:connections(c.order_id)
    local by_user = sb:admin("GET", "connections?user_id=" .. c.user_id).connections
    assert.are.equal(#by_order, #by_user)
    assert.are.equal(by_order[1].link_id, by_user[#by_user].link_id)
    local one = sb:admin("GET", "connections?link_id=" .. by_order[1].link_id).connections
    assert.are.equal(1, #one)
    assert.are.same(by_order[1], one[1])
    assert.are.equal(404, (sb:request("GET", "/_sandbox/connections?link_id=" .. string.rep("0", 32))))
  end)

  it("sets states by order_id, access_token or link_id", function()
    local c = cases[2]
    local res = sb:set_state{ order_id = c.order_id, state = "locked" }
    assert.are.equal(#c.employers + #c.financial_accounts, res.updated)
    for _, k in ipairs(sb:connections(c.order_id)) do assert.are.equal("locked", k.state) end
    local conns = sb:connections(c.order_id)
    sb:set_state{ access_token = conns[1].access_token, state = "mfa" }
    sb:set_state{ link_id = conns[1].link_id, state = "provider_down" }
    local k = sb:connections(c.order_id)[1]
    assert.are.equal("provider_down", k.state)
    assert.is_string(k.provider_down_until)
    sb:set_state{ access_token = conns[1].access_token, state = "expired" }
    k = sb:connections(c.order_id)[1]
    assert.are.equal("expired", k.state)
    assert.are.equal(true, k.oauth)
    sb:set_state{ access_token = conns[1].access_token, state = "active" }
    assert.are.equal("active", sb:connections(c.order_id)[1].state)
  end)

  it("validates state changes", function()
    local status, body = sb:request("POST", "/_sandbox/connections/state", { order_id = cases[1].order_id,
                                                                             state = "sleepy" })
    assert.are.equal(400, status)
    assert.is_string(fields(body).state)
    status, body = sb:request("POST", "/_sandbox/connections/state", { state = "mfa" })
    assert.are.equal(400, status)
    assert.is_string(fields(body).non_field_errors)
    status, body = sb:request("POST", "/_sandbox/connections/state", { access_token = string.rep("1", 32),
                                                                       state = "mfa" })
    assert.are.equal(400, status)
    assert.are.equal("Unknown access_token.", fields(body).access_token)
  end)
end)

describe("POST /_sandbox/orders/complete", function()
  local sb

  lazy_setup(function()
    sb = sandbox.start{ args = { "--seed-cases", "1", "--refresh-limit", "0" } }
  end)
  lazy_teardown(function() if sb then sb:shutdown() end end)

  it("connects every pending suborder in the given state", function()
    local _, o = sb:request("POST", "orders/", { products = { "income" }, first_name = "A", last_name = "B",
      employers = { { company_name = "X" }, { company_name = "Y" } } })
    local done = sb:complete_order{ order_id = o.id, state = "credentials", oauth = true }
    assert.are.equal(2, #done.employers)
    local conns = sb:connections(o.id)
    assert.are.equal("credentials", conns[1].state)
    assert.are.equal(true, conns[1].oauth)
    assert.are.equal(1, conns[1].refreshes_in_window)
    sb:advance(20)
    local _, now = sb:request("GET", "orders/" .. o.id .. "/")
    for _, e in ipairs(now.employers) do assert.are.equal("completed", e.status) end
    local _, r = sb:request("POST", "orders/" .. o.id .. "/", { products = { "income" } })
    sb:advance(20)
    local _, failed = sb:request("GET", "orders/" .. r.id .. "/")
    for _, e in ipairs(failed.employers) do assert.are.equal("error", e.status) end
  end)

  it("refuses seeded orders, unknown orders and bad states", function()
    local status = sb:request("POST", "/_sandbox/orders/complete", { order_id = sb:cases()[1].order_id })
    assert.are.equal(400, status)
    status = sb:request("POST", "/_sandbox/orders/complete", { order_id = string.rep("2", 32) })
    assert.are.equal(404, status)
    status = sb:request("POST", "/_sandbox/orders/complete", { order_id = string.rep("2", 32),
      state = "expired" })
    assert.are.equal(400, status)
    -- an order created without employers: the applicant finds one, once
    local _, bare = sb:request("POST", "orders/", { products = { "income" }, first_name = "A",
      last_name = "B" })
    local done
    status, done = sb:request("POST", "/_sandbox/orders/complete", { order_id = bare.id })
    assert.are.equal(200, status)
    assert.are.equal(1, #done.employers)
    assert.is_string(done.employers[1].access_token)
    status = sb:request("POST", "/_sandbox/orders/complete", { order_id = bare.id })
    assert.are.equal(400, status)
  end)
end)

describe("GET/POST /_sandbox/config", function()
  local sb

  lazy_setup(function()
    sb = sandbox.start{ args = { "--seed-cases", "2", "--mix", "active=1" } }
  end)
  lazy_teardown(function() if sb then sb:shutdown() end end)

  it("shows the defaults", function()
    assert.are.same({ rate_limit = 300, refresh_limit = 3, refresh_limit_status = 429, task_duration = 20,
                      task_duration_spread = 0, slow_share = 0, slow_factor = 5,
                      expiry_days = 180, provider_down_s = 3600, webhook_url = sandbox.null,
                      webhook_duplicates = 0, webhook_retries = 5, webhook_backoff_ms = 200 }, sb:config())
  end)

  it("changes only what is given, and validates", function()
    local cfg = sb:config{ task_duration = 4, expiry_days = 30 }
    assert.are.equal(4, cfg.task_duration)
    assert.are.equal(30, cfg.expiry_days)
    assert.are.equal(3, cfg.refresh_limit)
    local status, body = sb:request("POST", "/_sandbox/config", { refresh_limit_status = 401,
      expiry_days = -1,
                                                                 webhook_duplicates = 3 })
    assert.are.equal(400, status)
    local f = fields(body)
    assert.is_string(f.refresh_limit_status)
    assert.is_string(f.expiry_days)
    assert.is_string(f.webhook_duplicates)
    assert.are.equal(4, sb:config().task_duration)
  end)

  it("applies task_duration to tasks created afterwards", function()
    sb:config{ task_duration = 4 }
    local token = sb:connections(sb:cases()[1].order_id)[1].access_token
    local _, t = sb:request("POST", "refresh/tasks/", { access_token = token, product_type = "income" })
    sb:advance(4)
    local _, cur = sb:request("GET", "refresh/tasks/" .. t.task_id .. "/")
    assert.are.equal("done", cur.status)
  end)
end)
