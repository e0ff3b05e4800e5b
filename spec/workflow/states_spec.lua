-- Every connection state the sandbox models ends on the route the table
-- gives, through a real refresh, its task, and polling.
local world = require "spec.support.world"
local sandbox = require "spec.support.sandbox"
local truv = require "truv"

describe("a refresh of each connection state", function()
  local w
  lazy_setup(function()
    w = world.new{ args = { "--seed-cases", "80", "--rng-seed", "5", "--rate-limit", "0",
      "--mix", "active=1,expired=1,credentials=1,mfa=1,provider_down=1,no_data=1,locked=1,unsupported=1" } }
  end)
  lazy_teardown(function() if w then w:stop() end end)

  local expected = {
    active = { "done", "completed" },
    credentials = { "reverify", "login_error" },
    mfa = { "reverify", "mfa_error" },
    locked = { "reverify", "account_locked" },
    provider_down = { "retry", "unavailable" },
    no_data = { "no_data", "no_data" },
    unsupported = { "fix", "not_supported" },
  }
  for state, want in pairs(expected) do
    it("routes " .. state .. " to " .. want[1] .. " (" .. want[2] .. ")", function()
      local case = w:case(state, "income")
      local fresh = assert(w.client:refresh_order(case.order_id, { products = { "income" } }))
      local result = assert(w.client:wait_for_refresh(fresh))
      assert.is_true(result.finished)
      assert.equal(want[1], result.decision.route)
      assert.equal(want[2], result.decision.reason)
      if want[1] == "retry" then assert.is_true(result.decision.retry_at > w.now) end
      for _, c in ipairs(result.connections) do
        if want[1] ~= "done" and want[1] ~= "no_data" then assert.equal(want[2], c.task_status) end
      end
    end)
  end

  it("refreshes an old connection: Truv's answer (login_error) routes it to reverify, and it " ..
     "is then known dead: the next refresh is refused without being sent", function()
    local case = w:case("expired", "income")
    local before = w.sb:stats().refresh.tasks_created
    -- no local refusal by age: the refresh goes to Truv, which fails it
    local fresh = assert(w.client:refresh_order(case.order_id, { products = { "income" } }))
    assert.equal(before + #case.employers, w.sb:stats().refresh.tasks_created)
    local result = assert(w.client:wait_for_refresh(fresh))
    assert.equal("reverify", result.decision.route)
    assert.equal("login_error", result.decision.reason)
    -- what the wait learned is kept: the connection needs the user
    before = w.sb:stats().refresh.tasks_created
    local again, err = w.client:refresh_order(case.order_id, { products = { "income" } })
    assert.is_nil(again)
    assert.equal("expired", err.kind)
    assert.equal("connection_dead", err.code)
    assert.equal("login_error", err.reason)
    assert.equal(#case.employers, #err.expired)
    assert.equal("reverify", truv.route(err).route)
    assert.equal(before, w.sb:stats().refresh.tasks_created)
    -- the check can be turned off: then Truv is asked (and bills) again
    assert(w.client:refresh_order(case.order_id, { products = { "income" } },
                                  { refuse_dead = false }))
    assert.equal(before + #case.employers, w.sb:stats().refresh.tasks_created)
  end)

  it("keeps what a completed refresh shows: the connection is alive", function()
    local case
    for _, c in ipairs(w.cases) do
      if c.state == "active" and c.product == "employment" then case = c end
    end
    local fresh = assert(w.client:refresh_order(case.order_id, { products = { "employment" } }))
    local result = assert(w.client:wait_for_refresh(fresh))
    assert.equal("done", result.decision.route)
    for _, conn in ipairs(w:connections(case.order_id)) do
      local f = w.client.quota:facts(truv.quota.key(conn.access_token))
      assert.is_number(f.alive_at)
      assert.is_nil(f.dead_at)
    end
  end)

  it("refuses by age only when the caller opts in (expiry_days), spending nothing", function()
    local case = w:case("expired", "employment")
    local before = w.sb:stats().refresh.tasks_created
    local res, err = w.client:refresh_order(case.order_id, { products = { "employment" } },
                                            { expiry_days = 180 })
    assert.is_nil(res)
    assert.equal("connection_expired", err.code)
    assert.equal("reverify", truv.route(err).route)
    assert.equal(before, w.sb:stats().refresh.tasks_created)
  end)

  it("lists connections likely to expire soon in meta.expiring, and refreshes them", function()
    local case = w:case("active", "income")
    local fresh, meta = assert(w.client:refresh_order(case.order_id, { products = { "income" } },
                                                      { expiring_days = 0 }))
    assert.is_string(fresh.id)
    assert.equal(#case.employers, #meta.expiring)
    for _, e in ipairs(meta.expiring) do
      assert.equal("employers", e.kind)
      assert.equal("created", e.basis)
      assert.is_number(e.since)
      assert.is_true(e.age_days >= 0)
    end
    -- only the providers listed as OAuth, when a list is given
    local other
    for _, c in ipairs(w.cases) do
      if c.state == "active" and c.case_id ~= case.case_id then other = c end
    end
    local _, m2 = assert(w.client:refresh_order(other.order_id, { products = { other.product } },
      { expiring_days = 0, oauth_providers = { "no-such-provider" } }))
    assert.is_nil(m2.expiring)
  end)

  it("stops waiting at the deadline, with unfinished connections still waiting", function()
    local case = w:case("active", "employment")
    local fresh = assert(w.client:refresh_order(case.order_id, { products = { "employment" } }))
    local result = assert(w.client:wait_for_refresh(fresh, { timeout_s = 4, interval_s = 2 }))
    assert.is_false(result.finished)
    assert.equal("wait", result.decision.route)
  end)
end)

describe("re-verification", function()
  local w
  lazy_setup(function()
    w = world.new{ args = { "--seed-cases", "4", "--rng-seed", "9", "--mix", "credentials=1" } }
  end)
  lazy_teardown(function() if w then w:stop() end end)

  it("creates a new order copying the applicant and order_number, with its share_url", function()
    local case = w.cases[1]
    local original = assert(w.client:get_order(case.order_id))
    local link = assert(w.client:reverify(original))
    assert.equal("order", link.mode)
    assert.matches("^https://cdn%.truv%.com/", link.share_url)
    local fresh = assert(w.client:get_order(link.order_id))
    assert.equal(original.order_number, fresh.order_number)
    assert.equal(original.first_name, fresh.first_name)
    assert.equal(original.last_name, fresh.last_name)
    assert.same(truv.totable(original.products), truv.totable(fresh.products))
    assert.equal(#original.employers, #fresh.employers)
  end)

  it("creates update-mode bridge tokens, after which a refresh succeeds", function()
    local case = w.cases[2]
    local original = assert(w.client:get_order(case.order_id))
    local link = assert(w.client:reverify(original, { mode = "bridge" }))
    assert.equal("bridge", link.mode)
    assert.equal(#original.employers, #link.tokens)
    assert.matches("^%x+$", link.tokens[1].bridge_token)
    -- the applicant logs in again through Bridge (update mode)
    for _, t in ipairs(link.tokens) do w.sb:complete_bridge{ bridge_token = t.bridge_token } end
    local fresh = assert(w.client:refresh_order(case.order_id, { products = { case.product } }))
    assert.equal("done", assert(w.client:wait_for_refresh(fresh)).decision.route)
  end)

  it("refuses a connection it saw fail until it learns the user re-authenticated " ..
     "(link-connected), then refreshes it", function()
    local rx = sandbox.receiver()
    finally(function() rx:close() end)
    w.sb:config{ webhook_url = rx.url }
    local receiver = truv.receiver{ secrets = w.sb.secret, facts = w.client.quota,
                                    clock = function() return w.now end }
    local function deliver()
      assert(rx:pump(10, function(r)
        local st = w.sb:stats().webhooks
        return st.queued == 0 and #r.requests >= st.attempts
      end), "the sandbox's webhooks did not all arrive")
      for _, req in ipairs(rx.requests) do receiver:handle(req.body, req.headers) end
    end
    local case = w.cases[3]
    local fresh = assert(w.client:refresh_order(case.order_id, { products = { case.product } }))
    assert.equal("login_error", assert(w.client:wait_for_refresh(fresh)).decision.reason)
    local before = w.sb:stats().refresh.tasks_created
    local again, err = w.client:refresh_order(case.order_id, { products = { case.product } })
    assert.is_nil(again)
    assert.equal("connection_dead", err.code)
    assert.equal(before, w.sb:stats().refresh.tasks_created)
    -- the applicant logs in again through Bridge (update mode): Truv says link-connected
    local link = assert(w.client:reverify(assert(w.client:get_order(case.order_id)),
                                          { mode = "bridge" }))
    for _, t in ipairs(link.tokens) do w.sb:complete_bridge{ bridge_token = t.bridge_token } end
    w:advance(1)
    deliver()
    fresh = assert(w.client:refresh_order(case.order_id, { products = { case.product } }))
    assert.equal("done", assert(w.client:wait_for_refresh(fresh)).decision.route)
  end)
end)
