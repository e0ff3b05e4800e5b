-- Connection states decide how refresh tasks end; suborders follow; a
-- connection's age follows the user's last authentication.
local sandbox = require "spec.support.sandbox"
local null = sandbox.null

-- the statuses a refresh task shows while the clock moves 1 s at a time, and
-- the task as GET /v1/tasks/{id}/ shows it at the end
local function walk(sb, task_id, seconds)
  local seen = {}
  for _ = 0, seconds do
    local status, t = sb:request("GET", "refresh/tasks/" .. task_id .. "/")
    assert.are.equal(200, status)
    if t.status ~= seen[#seen] then seen[#seen + 1] = t.status end
    sb:advance(1)
  end
  local status, task = sb:request("GET", "tasks/" .. task_id .. "/")
  assert.are.equal(200, status)
  return seen, task
end

local function keys(t)
  local out = {}
  for k in pairs(t) do out[#out + 1] = k end
  table.sort(out)
  return out
end

local function new_task(sb, token, product)
  local status, body = sb:request("POST", "refresh/tasks/", { access_token = token,
                                                                product_type = product or "income" })
  assert.are.equal(200, status, body and (body.raw or sandbox.json.encode(body)))
  return body.task_id
end

describe("task paths by connection state", function()
  local sb, cases, next_case = nil, nil, 0

  -- a fresh seeded case per test, its connections put in `state`
  local function case_in(state)
    next_case = next_case + 1
    local c = cases[next_case]
    sb:set_state{ order_id = c.order_id, state = state }
    return c, sb:connections(c.order_id)
  end

  lazy_setup(function()
    sb = sandbox.start{ args = { "--seed-cases", "40", "--mix", "active=1", "--refresh-limit", "0",
                                 "--rate-limit", "0" } }
    cases = {}
    for _, c in ipairs(sb:cases()) do
      if c.product ~= "assets" then cases[#cases + 1] = c end
    end
  end)
  lazy_teardown(function() if sb then sb:shutdown() end end)

  local expected = {
    active = { { "new", "login", "parse", "full_parse", "done" }, null },
    credentials = { { "new", "login", "login_error" }, "Invalid credentials: the user must re-enter them" },
    mfa = { { "new", "login", "mfa", "mfa_error" },
      "Multi-factor authentication was required and not completed" },
    locked = { { "new", "login", "account_locked" }, "The account is locked at the provider" },
    provider_down = { { "new", "login", "unavailable" },
      "The provider is temporarily unavailable, retry later" },
    no_data = { { "new", "login", "parse", "no_data" }, "The provider returned no data" },
    unsupported = { { "new", "not_supported" }, "The provider is not supported" },
    expired = { { "new", "login", "login_error" }, "Connection expired, the user must reconnect" },
  }
  for _, state in ipairs({ "active", "credentials", "mfa", "locked", "provider_down", "no_data",
                           "unsupported", "expired" }) do
    it(state .. " -> " .. table.concat(expected[state][1], ", "), function()
      local _, conns = case_in(state)
      assert.are.equal(state, conns[1].state)
      local task_id = new_task(sb, conns[1].access_token)
      local seen, last = walk(sb, task_id, 21)
      assert.are.same(expected[state][1], seen)
      assert.are.equal(expected[state][2], last.error_message)
      assert.are.equal(conns[1].link_id, last.link_id)
    end)
  end

  it("shows a refresh task as Truv does: id, created_at, refresh_date (a date), status", function()
    local _, conns = case_in("credentials")
    local task_id = new_task(sb, conns[1].access_token, "employment")
    local status, t = sb:request("GET", "refresh/tasks/" .. task_id .. "/")
    assert.are.equal(200, status)
    assert.are.same({ "created_at", "id", "refresh_date", "status" }, keys(t))
    assert.are.equal(task_id, t.id)
    assert.are.equal("new", t.status)
    assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d+Z$", t.created_at)
    assert.are.equal(t.created_at:sub(1, 10), t.refresh_date)
    -- the Task object says more, error_message null while it runs
    local _, task = sb:request("GET", "tasks/" .. task_id .. "/")
    assert.are.equal("employment", task.product_type)
    assert.are.equal(null, task.error_message)
    assert.are.equal(conns[1].link_id, task.link_id)
    assert.is_nil(task.access_token)
  end)

  it("defaults product_type to the link's product", function()
    local c, conns = case_in("active")
    local status, body = sb:request("POST", "refresh/tasks/", { access_token = conns[1].access_token })
    assert.are.equal(200, status)
    local _, task = sb:request("GET", "tasks/" .. body.task_id .. "/")
    assert.are.equal(c.product, task.product_type)
    assert.are.equal(conns[1].product, task.product_type)
  end)

  it("a provider outage ends after provider_down_s: later tasks succeed", function()
    sb:config{ provider_down_s = 100 }
    finally(function() sb:config{ provider_down_s = 3600 } end)
    local c, conns = case_in("provider_down")
    local seen = walk(sb, new_task(sb, conns[1].access_token), 21)
    assert.are.equal("unavailable", seen[#seen])
    sb:advance(80)
    assert.are.equal("active", sb:connections(c.order_id)[1].state)
    seen = walk(sb, new_task(sb, conns[1].access_token), 21)
    assert.are.equal("done", seen[#seen])
  end)

  it("a task ending after the outage ends succeeds", function()
    sb:config{ provider_down_s = 10 }
    finally(function() sb:config{ provider_down_s = 3600 } end)
    local _, conns = case_in("provider_down")
    local seen = walk(sb, new_task(sb, conns[1].access_token), 21)
    assert.are.equal("done", seen[#seen])
  end)

  it("the state of a connection changes only later tasks", function()
    local c, conns = case_in("active")
    local task_id = new_task(sb, conns[1].access_token)
    sb:set_state{ access_token = conns[1].access_token, state = "locked" }
    local seen = walk(sb, task_id, 21)
    assert.are.equal("done", seen[#seen])
    seen = walk(sb, new_task(sb, conns[1].access_token), 21)
    assert.are.equal("account_locked", seen[#seen])
    sb:set_state{ link_id = conns[1].link_id, state = "active" }
    assert.are.equal("active", sb:connections(c.order_id)[1].state)
  end)

  it("a task duration of 0 ends a task at once", function()
    sb:config{ task_duration = 0 }
    finally(function() sb:config{ task_duration = 20 } end)
    local _, conns = case_in("mfa")
    local _, t = sb:request("GET", "refresh/tasks/" .. new_task(sb, conns[1].access_token) .. "/")
    assert.are.equal("mfa_error", t.status)
  end)
end)

describe("OAuth connection expiry", function()
  local sb

  lazy_setup(function()
    sb = sandbox.start{ args = { "--seed-cases", "30", "--mix", "active=3,expired=1", "--refresh-limit",
      "0", "--rate-limit", "0",
                                 "--expiry-days", "180" } }
  end)
  lazy_teardown(function() if sb then sb:shutdown() end end)

  it("seeded expired cases are OAuth connections authenticated before the horizon", function()
    local n = 0
    for _, c in ipairs(sb:cases()) do
      if c.state == "expired" then
        n = n + 1
        for _, conn in ipairs(sb:connections(c.order_id)) do
          assert.are.equal(true, conn.oauth)
          assert.are.equal("expired", conn.state)
        end
      end
    end
    assert.is_true(n > 0)
  end)

  it("an active OAuth connection expires once older than expiry_days", function()
    local target
    for _, c in ipairs(sb:cases()) do
      for _, conn in ipairs(sb:connections(c.order_id)) do
        if conn.oauth and conn.state == "active" and not target then target = { c, conn } end
      end
    end
    assert.is_not_nil(target, "no OAuth active connection among 30 cases")
    assert.matches("_oauth$", target[2].provider)
    local created = target[2].authenticated_at
    local y, mo, d, h, mi, s = created:match("^(%d+)-(%d+)-(%d+)T(%d+):(%d+):(%d+)")
    local t0 = os.time{ year = y, month = mo, day = d, hour = h, min = mi, sec = s, isdst = false }
    local utc_offset = os.time(os.date("!*t", 0)) -- make os.time UTC
    t0 = t0 - utc_offset
    local now = sb:now()
    local expiry = t0 + 180 * 86400
    assert.is_true(expiry > now)
    sb:set_time(expiry - 60)
    local token = target[2].access_token
    local seen = walk(sb, new_task(sb, token), 21)
    assert.are.equal("done", seen[#seen])
    sb:set_time(expiry + 1)
    for _, conn in ipairs(sb:connections(target[1].order_id)) do
      if conn.access_token == token then assert.are.equal("expired", conn.state) end
    end
    local last
    seen, last = walk(sb, new_task(sb, token), 21)
    assert.are.equal("login_error", seen[#seen])
    assert.are.equal("Connection expired, the user must reconnect", last.error_message)
  end)

  it("session-based connections do not expire", function()
    local target
    for _, c in ipairs(sb:cases()) do
      for _, conn in ipairs(sb:connections(c.order_id)) do
        if not conn.oauth and conn.state == "active" and not target then target = conn end
      end
    end
    assert.is_not_nil(target, "no session-based connection among 30 cases")
    assert.is_nil(target.provider:match("_oauth$"))
    sb:set_time(sb:now() + 3 * 365 * 86400)
    local seen = walk(sb, new_task(sb, target.access_token), 21)
    assert.are.equal("done", seen[#seen])
  end)
end)

describe("suborder statuses", function()
  local sb, two, one = nil, {}, {}

  lazy_setup(function()
    sb = sandbox.start{ args = { "--seed-cases", "60", "--mix", "active=1", "--refresh-limit", "0",
      "--rate-limit", "0" } }
    for _, c in ipairs(sb:cases()) do
      if c.product == "income" and #c.financial_accounts == 0 then
        if #c.employers == 2 then two[#two + 1] = c elseif #c.employers == 1 then one[#one + 1] = c end
      end
    end
  end)
  lazy_teardown(function() if sb then sb:shutdown() end end)

  local function refresh_and_finish(c)
    local status, r = sb:request("POST", "orders/" .. c.order_id .. "/", { products = { "income" } })
    assert.are.equal(200, status)
    for _, e in ipairs(r.employers) do assert.are.equal("pending", e.status) end
    sb:advance(10)
    local _, mid = sb:request("GET", "orders/" .. r.id .. "/")
    for _, e in ipairs(mid.employers) do assert.are.equal("pending", e.status) end
    assert.are.equal(null, mid.completed_at)
    sb:advance(10)
    local _, done = sb:request("GET", "orders/" .. r.id .. "/")
    return done
  end

  it("a suborder completes or fails with its task; completed_at once one completed", function()
    local c = two[1]
    local conns = sb:connections(c.order_id)
    sb:set_state{ access_token = conns[2].access_token, state = "credentials" }
    local done = refresh_and_finish(c)
    assert.is_nil(done.status)
    assert.are.equal("completed", done.employers[1].status)
    assert.are.equal("error", done.employers[2].status)
    assert.are.same({}, done.employers[2].employments)
    assert.are.equal(1, #done.employers[1].employments)
    assert.is_string(done.completed_at)
  end)

  it("no completed_at when every suborder failed", function()
    local c = two[2]
    sb:set_state{ order_id = c.order_id, state = "mfa" }
    local done = refresh_and_finish(c)
    for _, e in ipairs(done.employers) do assert.are.equal("error", e.status) end
    assert.are.equal(null, done.completed_at)
  end)

  it("no_data when the provider returned nothing", function()
    local c = one[1]
    sb:set_state{ order_id = c.order_id, state = "no_data" }
    local done = refresh_and_finish(c)
    assert.are.equal("no_data", done.employers[1].status)
    assert.are.equal(null, done.completed_at)
  end)

  it("the link's tasks say why a refreshed suborder failed", function()
    local c = two[3]
    local conns = sb:connections(c.order_id)
    sb:set_state{ access_token = conns[1].access_token, state = "no_data" }
    sb:set_state{ access_token = conns[2].access_token, state = "mfa" }
    local done = refresh_and_finish(c)
    assert.are.equal("error", done.employers[2].status)
    local status, page = sb:request("GET", "tasks/?link_id=" .. conns[2].link_id)
    assert.are.equal(200, status)
    assert.are.equal(2, page.count) -- the refresh task, then the initial one
    local t = page.results[1]
    assert.are.same({ "mfa_error", done.id, done.employers[2].id, conns[2].link_id, c.user_id },
                    { t.status, t.order_id, t.tracking_info, t.link_id, t.user_id })
    assert.are.equal("Multi-factor authentication was required and not completed", t.error_message)
    assert.are.same({ "done", c.order_id }, { page.results[2].status, page.results[2].order_id })
  end)

  it("updated_at follows the last suborder change", function()
    local c = one[2]
    local done = refresh_and_finish(c)
    assert.are.equal(done.completed_at, done.updated_at)
    assert.is_true(done.updated_at > done.created_at)
  end)
end)
