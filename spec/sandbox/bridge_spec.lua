-- Users, bridge tokens, the Bridge a test finishes through /_sandbox/bridge/complete,
-- public tokens, links, link reports and the task list: the calls of Truv's
-- quickstarts, and a connection whose state follows the user.
local sandbox = require "spec.support.sandbox"
local null = sandbox.null

local HEX32 = "^" .. string.rep("%x", 32) .. "$"

local function fields(body)
  local out = {}
  for _, p in ipairs(body.error.extra["invalid-params"]) do out[p.field] = p.message end
  return out
end

describe("users and bridge tokens", function()
  local sb

  lazy_setup(function()
    sb = sandbox.start{ args = { "--seed-cases", "2", "--mix", "active=1" } }
  end)
  lazy_teardown(function() if sb then sb:shutdown() end end)

  it("creates a user (201) and shows it", function()
    local status, u = sb:request("POST", "users/", { external_user_id = "qs-1", first_name = "Ada",
      last_name = "Lovelace", email = "ada@example.com", phone = "4155550100", ssn = "991-91-9991" })
    assert.are.equal(201, status)
    assert.matches(HEX32, u.id)
    assert.are.same({ "qs-1", "Ada", "Lovelace", "ada@example.com", "4155550100", "991-91-9991" },
                    { u.external_user_id, u.first_name, u.last_name, u.email, u.phone, u.ssn })
    local _, again = sb:request("GET", "users/" .. u.id .. "/")
    assert.are.same(u, again)
    assert.are.equal(404, (sb:request("GET", "users/" .. string.rep("0", 32) .. "/")))
    local bad
    status, bad = sb:request("POST", "users/", { email = "no", ssn = "12", first_name = 1 })
    assert.are.equal(400, status)
    local f = fields(bad)
    assert.is_string(f.email)
    assert.is_string(f.ssn)
    assert.is_string(f.first_name)
  end)

  it("answers a bridge token with Truv's members, echoing the request", function()
    local _, u = sb:request("POST", "users/", { external_user_id = "qs-2" })
    local status, t = sb:request("POST", "users/" .. u.id .. "/tokens/", { product_type = "income",
      tracking_info = "1338-0111-A", client_name = "Truv Quickstart", allowed_products = { "income",
      "employment" }, company_mapping_id = "m-1", template_id = "t-1", data_sources = { "payroll" },
      provider_id = "adp", use_case = "mortgage_lending", locale = "es", request_extended_history = true })
    assert.are.equal(200, status)
    assert.matches(HEX32, t.bridge_token)
    assert.are.same({ "1338-0111-A", "Truv Quickstart", "income", { "income", "employment" }, "m-1",
                      null, u.id, "t-1", { "payroll" } },
                    { t.tracking_info, t.client_name, t.product_type, t.allowed_products,
                      t.company_mapping_id, t.access_token, t.user_id, t.template_id, t.data_sources })
    _, t = sb:request("POST", "users/" .. u.id .. "/tokens/", { product_type = "employment" })
    assert.are.same({ null, "Truv Sandbox Client", null, null, null },
                    { t.tracking_info, t.client_name, t.allowed_products, t.template_id, t.data_sources })
  end)

  it("validates the request", function()
    local c = sb:cases()[1]
    local theirs = sb:connections(sb:cases()[2].order_id)[1].access_token
    local status, body = sb:request("POST", "users/" .. c.user_id .. "/tokens/", {
      product_type = "car", access_token = theirs, allowed_products = { "x" }, data_sources = { "scoring" },
      account = 1 })
    assert.are.equal(400, status)
    local f = fields(body)
    assert.is_string(f.product_type)
    assert.are.equal("Unknown access_token for this user.", f.access_token)
    assert.is_string(f["allowed_products[0]"])
    assert.is_string(f["data_sources[0]"])
    assert.is_string(f.account)
    status, body = sb:request("POST", "users/" .. c.user_id .. "/tokens/")
    assert.are.equal(400, status)
    assert.are.equal("This field is required.", fields(body).product_type)
    assert.are.equal(404, (sb:request("POST", "users/" .. string.rep("0", 32) .. "/tokens/",
      { product_type = "income" })))
  end)
end)

describe("finishing Bridge, public tokens, links and reports", function()
  local sb, rx

  lazy_setup(function()
    rx = sandbox.receiver{}
    sb = sandbox.start{ args = { "--seed-cases", "4", "--mix", "active=1", "--rate-limit", "0",
                                 "--webhook-url", rx.url, "--webhook-backoff-ms", "20" } }
  end)
  lazy_teardown(function()
    if sb then sb:shutdown() end
    if rx then rx:close() end
  end)
  before_each(function()
    rx:pump(0.05)
    rx.requests = {}
  end)

  local function new_link(product, extra)
    local _, u = sb:request("POST", "users/", { external_user_id = "u-" .. tostring(math.random(1e9)),
      first_name = "Ada", last_name = "Lovelace", email = "ada@example.com" })
    local _, t = sb:request("POST", "users/" .. u.id .. "/tokens/", { product_type = product,
      tracking_info = "track-1" })
    local body = { bridge_token = t.bridge_token }
    for k, v in pairs(extra or {}) do body[k] = v end
    local done = sb:admin("POST", "bridge/complete", body)
    local status, pair = sb:request("POST", "link-access-tokens/", { public_token = done.public_token })
    assert.are.equal(200, status)
    assert.are.equal(done.link_id, pair.link_id)
    return u, pair, done
  end

  it("connects a link for a bridge token and exchanges its public token once", function()
    local u, pair, done = new_link("income")
    assert.matches(HEX32, pair.access_token)
    local status, body = sb:request("POST", "link-access-tokens/", { public_token = done.public_token })
    assert.are.equal(410, status)
    assert.are.equal("expired_token", body.error.code)
    status, body = sb:request("POST", "link-access-tokens/", { public_token = string.rep("1", 32) })
    assert.are.equal(400, status)
    assert.is_string(fields(body).public_token)
    -- the link, its initial task (counted in the refresh window) and the webhook
    local conns = sb:admin("GET", "connections?user_id=" .. u.id).connections
    assert.are.same({ pair.access_token, "active", 1, "income" },
                    { conns[1].access_token, conns[1].state, conns[1].refreshes_in_window, conns[1].product })
    assert.is_true(rx:pump(3, function(r) return #r.requests >= 1 end))
    local ev = rx.requests[1].json
    assert.are.same({ "link-connected", pair.link_id, "income", "payroll", "track-1", u.id },
                    { ev.event_type, ev.link_id, ev.product, ev.data_source, ev.tracking_info, ev.user_id })
  end)

  it("lets a public token expire after 6 hours", function()
    local _, t = sb:request("POST", "users/" .. sb:cases()[1].user_id .. "/tokens/",
      { product_type = "employment" })
    local done = sb:admin("POST", "bridge/complete", { bridge_token = t.bridge_token })
    sb:advance(6 * 3600)
    local status, body = sb:request("POST", "link-access-tokens/", { public_token = done.public_token })
    assert.are.equal(410, status)
    assert.are.equal("expired_token", body.error.code)
  end)

  it("refuses an expired or unknown bridge token", function()
    local _, t = sb:request("POST", "users/" .. sb:cases()[1].user_id .. "/tokens/",
      { product_type = "income" })
    sb:advance(6 * 3600)
    local status, body = sb:request("POST", "/_sandbox/bridge/complete", { bridge_token = t.bridge_token })
    assert.are.equal(400, status)
    assert.matches("expired", fields(body).bridge_token)
    status = sb:request("POST", "/_sandbox/bridge/complete", { bridge_token = string.rep("2", 32) })
    assert.are.equal(404, status)
    status = sb:request("POST", "/_sandbox/bridge/complete", { bridge_token = t.bridge_token,
      state = "expired" })
    assert.are.equal(400, status)
  end)

  it("shows the link with its access_token masked", function()
    local u, pair = new_link("employment", { oauth = true })
    local status, link = sb:request("GET", "links/" .. pair.link_id .. "/")
    assert.are.equal(200, status)
    assert.are.equal(pair.link_id, link.id)
    assert.are.equal(string.rep("*", 28) .. pair.access_token:sub(29), link.access_token)
    assert.are.same({ "track-1", "employment", { "employment" }, "payroll", "truv_payroll_oauth", "new" },
                    { link.tracking_info, link.initial_product_type, link.allowed_products, link.data_source,
                      link.provider_id, link.status })
    assert.are.equal(u.external_user_id, link.user_external_id)
    sb:advance(20)
    status, link = sb:request("GET", "links/" .. pair.link_id .. "/")
    assert.are.same({ 200, "done" }, { status, link.status })
    assert.are.equal(404, (sb:request("GET", "links/" .. string.rep("3", 32) .. "/")))
  end)

  it("reports income and employment from the last task that ended done", function()
    local _, pair = new_link("income")
    local _, early = sb:request("GET", "links/" .. pair.link_id .. "/income/report/")
    assert.are.same({ "new", {}, null, null }, { early.status, early.employments, early.completed_at,
                                                 early.refresh_status })
    sb:advance(20)
    local status, income = sb:request("GET", "links/" .. pair.link_id .. "/income/report/")
    assert.are.equal(200, status)
    assert.are.equal("done", income.status)
    assert.are.equal(pair.access_token, income.access_token)
    assert.are.equal(1, #income.employments)
    assert.is_true(#income.employments[1].statements >= 12)
    assert.are.equal("Ada", income.employments[1].profile.first_name)
    local _, employment = sb:request("GET", "links/" .. pair.link_id .. "/employment/report/")
    assert.are.same({}, employment.employments[1].statements)
    assert.are.equal(income.employments[1].job_title, employment.employments[1].job_title)
    -- a refresh that fails: the report says so and keeps the data it had
    sb:set_state{ access_token = pair.access_token, state = "credentials" }
    sb:request("POST", "refresh/tasks/", { access_token = pair.access_token })
    sb:advance(20)
    local _, after = sb:request("GET", "links/" .. pair.link_id .. "/income/report/")
    assert.are.same({ "login_error", "login_error", income.completed_at, income.id },
                    { after.status, after.refresh_status, after.completed_at, after.id })
    assert.are.same(income.employments[1].statements, after.employments[1].statements)
  end)

  it("lists a user's and a link's tasks, newest first, with the reason of a failure", function()
    local u, pair = new_link("income")
    sb:advance(20)
    sb:set_state{ access_token = pair.access_token, state = "mfa" }
    local _, t = sb:request("POST", "refresh/tasks/", { access_token = pair.access_token })
    sb:advance(20)
    local _, other = new_link("employment")
    local status, page = sb:request("GET", "tasks/?user_id=" .. u.id)
    assert.are.equal(200, status)
    assert.are.same({ 2, null, null }, { page.count, page.next, page.previous })
    assert.are.same({ t.task_id, "mfa_error", "Multi-factor authentication was required and not completed",
                      pair.link_id, u.id, null, "track-1" },
                    { page.results[1].id, page.results[1].status, page.results[1].error_message,
                      page.results[1].link_id, page.results[1].user_id, page.results[1].order_id,
                      page.results[1].tracking_info })
    assert.are.same({ "done", null }, { page.results[2].status, page.results[2].error_message })
    local _, by_link = sb:request("GET", "tasks/?link_id=" .. other.link_id)
    assert.are.equal(1, by_link.count)
    local _, both = sb:request("GET", "tasks/?link_id=" .. other.link_id .. "&user_id=" .. u.id)
    assert.are.equal(0, both.count)
    local _, none = sb:request("GET", "tasks/?user_id=" .. string.rep("4", 32))
    assert.are.same({ 0, {} }, { none.count, none.results })
    local _, one = sb:request("GET", "tasks/" .. t.task_id .. "/")
    assert.are.same(page.results[1], one)
    assert.are.equal(404, (sb:request("GET", "tasks/" .. string.rep("5", 32) .. "/")))
  end)

  it("pages the task list by 100", function()
    local _, pair = new_link("income")
    sb:advance(20)
    sb:config{ refresh_limit = 0 }
    finally(function() sb:config{ refresh_limit = 3 } end)
    for _ = 1, 120 do sb:request("POST", "refresh/tasks/", { access_token = pair.access_token }) end
    local _, p1 = sb:request("GET", "tasks/?link_id=" .. pair.link_id)
    assert.are.same({ 121, 100 }, { p1.count, #p1.results })
    assert.are.equal(sb.origin .. "/v1/tasks/?link_id=" .. pair.link_id .. "&page=2", p1.next)
    local _, p2 = sb:request("GET", "tasks/?link_id=" .. pair.link_id .. "&page=2")
    assert.are.equal(21, #p2.results)
    assert.are.equal("done", p2.results[21].status) -- the initial task, oldest
    assert.are.equal(404, (sb:request("GET", "tasks/?link_id=" .. pair.link_id .. "&page=3")))
  end)

  it("connects an API order's suborders through the order's bridge_token", function()
    local _, o = sb:request("POST", "orders/", { products = { "employment" }, first_name = "A",
      last_name = "B", employers = { { company_name = "Home Depot" } } })
    local done = sb:admin("POST", "bridge/complete", { bridge_token = o.bridge_token })
    local _, pair = sb:request("POST", "link-access-tokens/", { public_token = done.public_token })
    sb:advance(20)
    local _, now = sb:request("GET", "orders/" .. o.id .. "/")
    assert.are.same({ "completed", pair.link_id, pair.access_token },
                    { now.employers[1].status, now.employers[1].link_id, now.employers[1].access_token })
    local status = sb:request("POST", "/_sandbox/bridge/complete", { bridge_token = o.bridge_token })
    assert.are.equal(400, status)
  end)

  it("makes the suborder the user found in Bridge for an order created without one", function()
    -- Truv's Python quickstart creates an income order with no employers
    -- (IS_ORDER=true): the applicant searches for the employer in Bridge
    for _, case in ipairs{ { "income", "employers", "payroll" },
                           { "assets", "financial_accounts", "financial_accounts" } } do
      local product, list, source = case[1], case[2], case[3]
      local status, o = sb:request("POST", "orders/", { products = { product }, first_name = "A",
        last_name = "B", order_number = "qs-" .. product })
      assert.are.equal(201, status)
      assert.are.same({}, o.employers)
      local done = sb:admin("POST", "bridge/complete", { bridge_token = o.bridge_token })
      local _, pair = sb:request("POST", "link-access-tokens/", { public_token = done.public_token })
      sb:advance(20)
      local _, now = sb:request("GET", "orders/" .. o.id .. "/")
      assert.are.equal(1, #now[list])
      local sub = now[list][1]
      assert.are.same({ "completed", pair.link_id, pair.access_token, product, source },
                      { sub.status, sub.link_id, sub.access_token, sub.product_type, sub.data_source })
      assert.matches(HEX32, sub.id)
      assert.is_string(sub.suborder_number)
      -- finished once: the next completion finds nothing pending
      assert.are.equal(400, (sb:request("POST", "/_sandbox/bridge/complete",
                                        { bridge_token = o.bridge_token })))
    end
  end)
end)

describe("connection state follows the user: Bridge update mode", function()
  local sb, cases

  lazy_setup(function()
    sb = sandbox.start{ args = { "--seed-cases", "8", "--mix", "active=1", "--refresh-limit", "0" } }
    cases = sb:cases()
  end)
  lazy_teardown(function() if sb then sb:shutdown() end end)

  local function refresh_ends(token)
    local _, t = sb:request("POST", "refresh/tasks/", { access_token = token })
    sb:advance(20)
    local _, done = sb:request("GET", "refresh/tasks/" .. t.task_id .. "/")
    return done.status
  end

  for i, state in ipairs({ "credentials", "mfa", "expired", "provider_down" }) do
    it("revives a " .. state .. " connection once the user finishes Bridge, not before", function()
      local c = cases[i]
      local conn = sb:connections(c.order_id)[1]
      sb:set_state{ access_token = conn.access_token, state = state }
      local status, t = sb:request("POST", "users/" .. c.user_id .. "/tokens/", {
        product_type = c.product == "assets" and "assets" or "income", access_token = conn.access_token })
      assert.are.equal(200, status)
      assert.are.equal(conn.access_token, t.access_token)
      assert.are.equal(state, sb:connections(c.order_id)[1].state)
      assert.are_not.equal("done", refresh_ends(conn.access_token))
      local before = sb:now()
      local done = sb:admin("POST", "bridge/complete", { bridge_token = t.bridge_token })
      assert.are.equal(conn.link_id, done.link_id)
      local after = sb:connections(c.order_id)[1]
      assert.are.equal("active", after.state)
      assert.is_true(after.authenticated_at > conn.authenticated_at)
      assert.are.equal(os.date("!%Y-%m-%dT%H:%M:%S", math.floor(before)), after.authenticated_at:sub(1, 19))
      assert.are.equal(conn.created_at, after.created_at) -- the same link
      assert.are.equal("done", refresh_ends(conn.access_token))
      -- the same link: exchanging the new public token gives the same access_token
      local _, pair = sb:request("POST", "link-access-tokens/", { public_token = done.public_token })
      assert.are.same({ conn.access_token, conn.link_id }, { pair.access_token, pair.link_id })
    end)
  end

  it("restarts an OAuth connection's age at the re-authentication", function()
    local c = cases[6]
    local conn = sb:connections(c.order_id)[1]
    sb:set_state{ access_token = conn.access_token, state = "expired" }
    local _, t = sb:request("POST", "users/" .. c.user_id .. "/tokens/", { product_type = "income",
      access_token = conn.access_token })
    sb:admin("POST", "bridge/complete", { bridge_token = t.bridge_token })
    sb:advance(179 * 86400)
    assert.are.equal("active", sb:connections(c.order_id)[1].state)
    sb:advance(2 * 86400)
    assert.are.equal("expired", sb:connections(c.order_id)[1].state)
  end)
end)
