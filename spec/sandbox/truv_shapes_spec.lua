-- truv-sandbox answers with the members of Truv's documentation examples
-- (spec/fixtures/truv-docs/, each file with its page): no more, no fewer.
-- Values may be null where the example shows one; the members must be there.
local sandbox = require "spec.support.sandbox"
local files = require "spec.support.files"
local cjson = sandbox.json

local DIR = (os.getenv("TRUV_FIXTURES") or "spec/fixtures") .. "/truv-docs/"

local function example(name) return cjson.decode(files.slurp(DIR .. name)) end

local function keys(t)
  local out = {}
  for k in pairs(t) do out[#out + 1] = k end
  table.sort(out)
  return out
end

-- the members of the attribute table of a reference page
local function attributes(name)
  local out = {}
  for line in files.slurp(DIR .. name):gmatch("[^\n]+") do
    local attr = line:match("^| ([%w_]+) |")
    if attr and attr ~= "Attribute" then out[#out + 1] = attr end
  end
  table.sort(out)
  return out
end

-- a time's format: its digits masked ("2024-07-11T21:40:48.424655+00:00" ->
-- "dddd-dd-ddTdd:dd:dd.dddddd+dd:dd")
local function format(s) return (s:gsub("%d", "d")) end

local function same_keys(expected, actual, what)
  assert.are.same(keys(expected), keys(actual), what)
end

describe("the sandbox's answers have the members of Truv's examples", function()
  local sb, rx, cases
  local order_ex = example("order.json")

  local function case(pred)
    for _, c in ipairs(cases) do if pred(c) then return c end end
    error("no such case")
  end

  -- the body of an answer with status `expect`
  local function ok(expect, status, body)
    assert.are.equal(expect, status, body and (body.raw or cjson.encode(body)))
    return body
  end

  local function check_order(o, what)
    same_keys(order_ex, o, what)
    for _, e in ipairs(o.employers) do
      same_keys(order_ex.employers[1], e, what .. " employer")
      if e.provider ~= sandbox.null then same_keys(order_ex.employers[1].provider, e.provider) end
    end
    for _, fa in ipairs(o.financial_accounts) do
      same_keys(order_ex.financial_accounts[1], fa, what .. " financial account")
      for _, a in ipairs(fa.accounts) do same_keys(order_ex.financial_accounts[1].accounts[1], a) end
    end
  end

  lazy_setup(function()
    rx = sandbox.receiver{}
    sb = sandbox.start{ args = { "--seed-cases", "40", "--mix", "active=1", "--refresh-limit", "0",
                                 "--rate-limit", "0", "--webhook-url", rx.url,
                                 "--webhook-backoff-ms", "20" } }
    cases = sb:cases()
  end)
  lazy_teardown(function()
    if sb then sb:shutdown() end
    if rx then rx:close() end
  end)

  it("orders: seeded, created (201) and refresh orders", function()
    local c = case(function(x) return x.product == "income" and #x.financial_accounts > 0 end)
    check_order(ok(200, sb:request("GET", "orders/" .. c.order_id .. "/")), "seeded order")
    local created = ok(201, sb:request("POST", "orders/", { products = { "income" }, first_name = "A",
      last_name = "B", email = "a@example.com", phone = "4155550100", external_user_id = "shape-1",
      employers = { { company_name = "Acme" } } }))
    check_order(created, "created order")
    assert.are.equal("internal", created.source)
    local req = example("refresh-order-request.json")
    req.employers = { { id = c.employers[1].id, suborder_number = c.employers[1].suborder_number } }
    req.financial_accounts, req.products = nil, { "income" }
    local refreshed = ok(200, sb:request("POST", "orders/" .. c.order_id .. "/", req))
    check_order(refreshed, "refresh order")
    assert.are.equal(format(order_ex.created_at), format(refreshed.created_at))
    sb:advance(20)
    check_order(ok(200, sb:request("GET", "orders/" .. refreshed.id .. "/")), "finished refresh order")
  end)

  it("order events", function()
    local ex = example("order-events.json")
    local c = case(function(x) return x.product == "employment" end)
    local r = ok(200, sb:request("POST", "orders/" .. c.order_id .. "/", { products = { "employment" } }))
    sb:advance(20)
    for _, id in ipairs({ c.order_id, r.id }) do
      local page = ok(200, sb:request("GET", "orders/" .. id .. "/events/"))
      assert.is_true(#page.results >= 2)
      for _, e in ipairs(page.results) do
        same_keys(ex.results[1], e, e.type)
        assert.are.equal("order", e.object)
        assert.are.equal(format(ex.results[1].timestamp), format(e.timestamp))
      end
    end
  end)

  it("refresh tasks: create (with and without product_type) and status", function()
    local c = case(function(x) return x.product == "income" end)
    local token = sb:connections(c.order_id)[1].access_token
    local req = example("refresh-task-create-request.json")
    req.access_token = token
    local created = ok(200, sb:request("POST", "refresh/tasks/", req))
    same_keys(example("refresh-task-create-response.json"), created)
    same_keys(example("refresh-task-create-response.json"),
              ok(200, sb:request("POST", "refresh/tasks/", { access_token = token })))
    local t = ok(200, sb:request("GET", "refresh/tasks/" .. created.task_id .. "/"))
    local old = example("refresh-task-old.json")
    same_keys(example("refresh-task.json"), t)
    same_keys(old, t)
    assert.are.equal(format(old.refresh_date), format(t.refresh_date))
  end)

  it("tasks: one, and the list", function()
    local ex = example("task.json")
    local c = case(function(x) return x.product == "income" end)
    local conn = sb:connections(c.order_id)[1]
    local created = ok(200, sb:request("POST", "refresh/tasks/", { access_token = conn.access_token }))
    local t = ok(200, sb:request("GET", "tasks/" .. created.task_id .. "/"))
    same_keys(ex, t)
    same_keys(ex.provider, t.provider)
    local page = ok(200, sb:request("GET", "tasks/?user_id=" .. c.user_id))
    assert.are.same({ "count", "next", "previous", "results" }, keys(page))
    assert.is_true(#page.results >= 2)
    for _, x in ipairs(page.results) do same_keys(ex, x) end
  end)

  it("users, bridge tokens, public tokens, links and link reports", function()
    local user = ok(201, sb:request("POST", "users/", { external_user_id = "shape-user", first_name = "Ada",
      last_name = "Lovelace", email = "ada@example.com" }))
    same_keys(example("user.json"), user)
    same_keys(example("user.json"), ok(200, sb:request("GET", "users/" .. user.id .. "/")))
    local token = ok(200, sb:request("POST", "users/" .. user.id .. "/tokens/",
      { product_type = "income", tracking_info = "1338-0111-A" }))
    same_keys(example("bridge-token-response.json"), token)
    local done = sb:admin("POST", "bridge/complete", { bridge_token = token.bridge_token })
    local req = example("link-access-token-request.json")
    req.public_token = done.public_token
    local pair = ok(200, sb:request("POST", "link-access-tokens/", req))
    assert.are.same({ "access_token", "link_id" }, keys(pair))
    -- the documented request in full, in update mode
    local full = example("bridge-token-request.json")
    full.access_token = pair.access_token
    same_keys(example("bridge-token-response.json"),
              ok(200, sb:request("POST", "users/" .. user.id .. "/tokens/", full)))
    local link_ex = example("link.json")
    local link = ok(200, sb:request("GET", "links/" .. pair.link_id .. "/"))
    same_keys(link_ex, link)
    same_keys(link_ex.provider, link.provider)
    same_keys(link_ex.company_mapping, link.company_mapping)
    assert.are.equal(format(link_ex.access_token), format(link.access_token:gsub("%x", "0")))
    sb:advance(20)
    for _, product in ipairs({ "income", "employment" }) do
      local report = ok(200, sb:request("GET", "links/" .. pair.link_id .. "/" .. product .. "/report/"))
      assert.are.same(attributes("link-report-attributes.md"), keys(report), product)
    end
  end)

  it("every webhook event type", function()
    rx:pump(0.05)
    rx.requests = {}
    local c = case(function(x) return x.product == "income" and #x.employers == 1
                                      and #x.financial_accounts == 0 end)
    sb:set_state{ order_id = c.order_id, state = "credentials" }
    sb:request("POST", "orders/" .. c.order_id .. "/", { products = { "income" } })
    local user = ok(201, sb:request("POST", "users/", { external_user_id = "shape-hooks" }))
    local token = ok(200, sb:request("POST", "users/" .. user.id .. "/tokens/", { product_type = "income" }))
    sb:admin("POST", "bridge/complete", { bridge_token = token.bridge_token })
    sb:advance(20)
    local expected = {
      ["order-created"] = example("webhook-order-created.json"),
      ["order-status-updated"] = example("webhook-order-status-updated.json"),
      ["order-refresh-failed"] = example("webhook-order-status-updated.json"),
      ["task-status-updated"] = example("webhook-task-status-updated.json"),
      ["link-disconnected"] = example("webhook-link-disconnected.json"),
      ["link-connected"] = example("webhook-link-disconnected.json"),
    }
    assert.is_true(rx:pump(5, function(r)
      local seen = {}
      for _, req in ipairs(r.requests) do seen[req.json.event_type] = true end
      for t in pairs(expected) do if not seen[t] then return false end end
      return true
    end), "not every event type arrived")
    for _, e in ipairs(rx:events()) do
      local ex = expected[e.event_type]
      assert.is_not_nil(ex, e.event_type)
      same_keys(ex, e, e.event_type)
      assert.are.equal(format(ex.event_created_at), format(e.event_created_at), e.event_type)
      assert.are.equal(format(ex.updated_at), format(e.updated_at), e.event_type)
    end
  end)
end)
