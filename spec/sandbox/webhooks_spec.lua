-- Signed webhook delivery: signatures, event order, retries, duplicates.
local sandbox = require "spec.support.sandbox"
local null = sandbox.null

local HEX32 = "^" .. string.rep("%x", 32) .. "$"

describe("webhooks", function()
  local sb, rx, cases, next_case = nil, nil, nil, 0
  local status_plan -- per-test answer of the receiver

  local function fresh_case(pred)
    repeat next_case = next_case + 1 until pred(cases[next_case])
    return cases[next_case]
  end

  local function one_employer_income(c)
    return c.product == "income" and #c.employers == 1 and #c.financial_accounts == 0
  end

  local function pump_until(n, timeout)
    return rx:pump(timeout or 5, function(r) return #r.requests >= n end)
  end

  local function types(events)
    local out = {}
    for _, e in ipairs(events) do
      out[#out + 1] = e.event_type .. (e.status ~= nil and e.status ~= null and (":" .. e.status) or "")
    end
    return out
  end

  lazy_setup(function()
    rx = sandbox.receiver{ respond = function(n, req) return status_plan and status_plan(n, req) or 200 end }
    sb = sandbox.start{ args = { "--seed-cases", "30", "--mix", "active=1", "--webhook-url", rx.url,
                                 "--webhook-backoff-ms", "20", "--refresh-limit", "0", "--rate-limit", "0" } }
    cases = sb:cases()
  end)
  lazy_teardown(function()
    if sb then sb:shutdown() end
    if rx then rx:close() end
  end)
  before_each(function()
    rx:pump(0.05)
    rx.requests = {}
    status_plan = nil
  end)

  it("signs each event with v1=HMAC-SHA256(secret, raw body) and Truv's headers", function()
    local _, o = sb:request("POST", "orders/", { products = { "employment" }, first_name = "A",
      last_name = "B",
                                                  order_number = "W-1" })
    assert.is_true(pump_until(1))
    local req = rx.requests[1]
    assert.are.equal("POST", req.method)
    assert.are.equal("/webhooks/truv", req.path)
    assert.are.equal("application/json", req.headers["content-type"])
    assert.are.equal("Truv-Webhook-Service/2.0", req.headers["user-agent"])
    assert.are.equal("v1=" .. sandbox.hmac_sha256_hex(sb.secret, req.body), req.headers["x-webhook-sign"])
    assert.are_not.equal("v1=" .. sandbox.hmac_sha256_hex("sandbox-other", req.body),
      req.headers["x-webhook-sign"])
    local e = req.json
    assert.matches(HEX32, e.webhook_id)
    assert.are.equal("order-created", e.event_type)
    -- Truv's two time formats: event_created_at ends in Z, updated_at in +00:00
    assert.are.equal(o.created_at, e.event_created_at)
    assert.are.equal(o.created_at:gsub("Z$", "+00:00"), e.updated_at)
    assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%d%d%d%d%+00:00$", e.updated_at)
    assert.are.equal(o.user_id, e.user_id)
    assert.are.equal(null, e.template_id)
    assert.are.equal(o.id, e.order_id)
    assert.are.equal("W-1", e.order_number)
    assert.are.equal("employment", e.product)
    assert.are.equal("pending", e.status)
    assert.are.equal(null, e.employer_id)
    assert.are.equal(null, e.link_id)
    assert.are.equal(null, e.data_source)
  end)

  it("announces a refresh in order: created, every task status, then the suborder", function()
    local c = fresh_case(one_employer_income)
    local _, r = sb:request("POST", "orders/" .. c.order_id .. "/", { products = { "income" } })
    sb:advance(20)
    assert.is_true(pump_until(7))
    rx:pump(0.1)
    local ev = rx:events()
    assert.are.same({ "order-created:pending", "task-status-updated:new", "task-status-updated:login",
                      "task-status-updated:parse", "task-status-updated:full_parse",
                      "task-status-updated:done", "order-status-updated:completed" }, types(ev))
    local _, timeline = sb:request("GET", "orders/" .. r.id .. "/events/")
    local task_id = timeline.results[2].task_id
    for i = 2, 7 do
      assert.is_true(ev[i].updated_at >= ev[i - 1].updated_at)
      assert.are.equal(r.employers[1].link_id, ev[i].link_id)
      assert.are.equal("income", ev[i].product)
      assert.are.equal("payroll", ev[i].data_source)
    end
    for i = 2, 6 do
      assert.are.equal(task_id, ev[i].task_id)
      assert.are.equal(r.employers[1].id, ev[i].tracking_info)
    end
    assert.are.equal(r.id, ev[7].order_id)
    assert.are.equal(r.employers[1].id, ev[7].employer_id)
    assert.are.equal(c.order_number, ev[7].order_number)
    assert.are.equal(ev[6].updated_at, ev[7].updated_at)
    local ids = {}
    for _, e in ipairs(ev) do
      assert.is_nil(ids[e.webhook_id])
      ids[e.webhook_id] = true
    end
  end)

  it("reports a failed refresh with order-refresh-failed and link-disconnected", function()
    local c = fresh_case(one_employer_income)
    sb:set_state{ order_id = c.order_id, state = "credentials" }
    local _, r = sb:request("POST", "orders/" .. c.order_id .. "/", { products = { "income" } })
    sb:advance(20)
    assert.is_true(pump_until(7))
    local ev = rx:events()
    assert.are.same({ "order-created:pending", "task-status-updated:new", "task-status-updated:login",
                      "task-status-updated:login_error", "order-status-updated:error",
                      "order-refresh-failed:login_error", "link-disconnected" }, types(ev))
    assert.are.equal(r.id, ev[6].order_id)
    assert.are.equal(r.employers[1].id, ev[6].employer_id)
    assert.are.equal(r.employers[1].link_id, ev[7].link_id)
    assert.are.equal(r.employers[1].id, ev[7].tracking_info)
  end)

  it("no_data is not a failure: no order-refresh-failed", function()
    local c = fresh_case(one_employer_income)
    sb:set_state{ order_id = c.order_id, state = "no_data" }
    sb:request("POST", "orders/" .. c.order_id .. "/", { products = { "income" } })
    sb:advance(20)
    assert.is_true(pump_until(6))
    rx:pump(0.2)
    assert.are.same({ "order-created:pending", "task-status-updated:new", "task-status-updated:login",
                      "task-status-updated:parse", "task-status-updated:no_data",
                      "order-status-updated:no_data" }, types(rx:events()))
  end)

  it("direct tasks announce their statuses; failures disconnect the link", function()
    local c = fresh_case(function(x) return x.product ~= "assets" end)
    sb:set_state{ order_id = c.order_id, state = "unsupported" }
    local token = sb:connections(c.order_id)[1].access_token
    local _, t = sb:request("POST", "refresh/tasks/", { access_token = token, product_type = "employment" })
    sb:advance(20)
    assert.is_true(pump_until(3))
    local ev = rx:events()
    assert.are.same({ "task-status-updated:new", "task-status-updated:not_supported", "link-disconnected" },
                    types(ev))
    assert.are.equal(t.task_id, ev[1].task_id)
    -- a direct task carries its link's tracking_info: the original suborder's id
    assert.are.equal(c.employers[1].id, ev[1].tracking_info)
    assert.are.equal(c.employers[1].id, ev[3].tracking_info)
    assert.are.equal("employment", ev[3].product)
  end)

  it("retries a failed delivery with backoff, keeping the order", function()
    status_plan = function(n) return n <= 2 and 500 or 200 end
    sb:request("POST", "orders/", { products = { "income" }, first_name = "A", last_name = "B" })
    sb:request("POST", "orders/", { products = { "income" }, first_name = "C", last_name = "D" })
    assert.is_true(pump_until(4))
    local r = rx.requests
    assert.are.equal(r[1].body, r[2].body)
    assert.are.equal(r[1].body, r[3].body)
    assert.are.equal("order-created", r[4].json.event_type)
    assert.are_not.equal(r[1].json.order_id, r[4].json.order_id)
    local log = sb:webhooks()
    local entry
    for _, d in ipairs(log) do if d.webhook_id == r[1].json.webhook_id then entry = d end end
    assert.are.equal(200, entry.status)
    assert.are.equal(3, entry.attempts)
  end)

  it("gives up after webhook_retries and counts the failure", function()
    sb:config{ webhook_retries = 2 }
    finally(function() sb:config{ webhook_retries = 5 } end)
    local before = sb:stats().webhooks
    status_plan = function() return 503 end
    sb:request("POST", "orders/", { products = { "income" }, first_name = "A", last_name = "B" })
    assert.is_true(pump_until(3))
    local ok = sandbox.wait_until(function() return sb:stats().webhooks.failed > before.failed end, 3)
    assert.is_true(ok)
    local log = sb:webhooks()
    assert.are.equal(503, log[#log].status)
    assert.are.equal(3, log[#log].attempts)
    assert.are.equal(rx.requests[1].json.webhook_id, log[#log].webhook_id)
  end)

  it("re-sends a share of events byte-identical with the same webhook_id", function()
    sb:config{ webhook_duplicates = 1 }
    finally(function() sb:config{ webhook_duplicates = 0 } end)
    local before = sb:stats().webhooks
    sb:request("POST", "orders/", { products = { "income" }, first_name = "A", last_name = "B" })
    sb:request("POST", "orders/", { products = { "income" }, first_name = "A", last_name = "B" })
    assert.is_true(pump_until(4))
    local r = rx.requests
    assert.are.equal(r[1].body, r[2].body)
    assert.are.equal(r[1].headers["x-webhook-sign"], r[2].headers["x-webhook-sign"])
    assert.are.equal(r[3].body, r[4].body)
    assert.are_not.equal(r[1].json.webhook_id, r[3].json.webhook_id)
    local after = sandbox.wait_until(function()
      local w = sb:stats().webhooks
      return w.duplicates >= before.duplicates + 2 and w
    end, 3)
    assert.is_truthy(after)
    assert.are.equal(2, after.sent - before.sent)
  end)

  it("follows webhook_url changes at run time", function()
    sb:config{ webhook_url = sandbox.null }
    sb:request("POST", "orders/", { products = { "income" }, first_name = "A", last_name = "B" })
    rx:pump(0.3)
    assert.are.equal(0, #rx.requests)
    assert.are.equal(sandbox.null, sb:config().webhook_url)
    sb:config{ webhook_url = rx.url }
    sb:request("POST", "orders/", { products = { "income" }, first_name = "A", last_name = "B" })
    assert.is_true(pump_until(1))
    local status = sb:request("POST", "/_sandbox/config", { webhook_url = "ftp://x" })
    assert.are.equal(400, status)
  end)
end)
