-- Every outcome lands on its route, with a reason and, where it applies, a
-- time; scripts can override any mapping and attach handlers.
local truv = require "truv"
local errors = truv.errors

local NOW = 1800000000

describe("truv.route", function()
  local expected = {
    new = "wait", login = "wait", mfa = "wait", parse = "wait", base_parse = "wait",
    full_parse = "wait", switch_deposit = "wait", done = "done",
    login_error = "reverify", mfa_error = "reverify", account_locked = "reverify",
    unable_to_reset = "reverify", config_error = "fix", not_supported = "fix",
    no_data = "no_data", unavailable = "retry", error = "retry",
  }
  for status, route in pairs(expected) do
    it("routes task status " .. status .. " to " .. route, function()
      local r = truv.route({ task = status }, NOW)
      assert.equal(route, r.route)
      assert.equal(status, r.reason)
      assert.equal(status, r.status)
      assert.equal(route ~= "wait", r.final)
    end)
  end

  it("gives a retry its time and a defer its not-before", function()
    local r = truv.route({ task = "unavailable" }, NOW)
    assert.equal(NOW + 3600, r.retry_at)
    local e = errors.new("quota", "refresh_quota", "spent", { retry_at = NOW + 500 })
    r = truv.route(e, NOW)
    assert.equal("defer", r.route)
    assert.equal(NOW + 500, r.not_before)
    assert.equal("refresh_quota", r.reason)
  end)

  it("routes an unknown future status to fix, keeping it", function()
    local r = truv.route({ task = "quantum_parse" }, NOW)
    assert.same({ route = "fix", reason = "unknown_status", outcome = "task",
                  status = "quantum_parse", final = true }, r)
  end)

  it("routes a refresh task document by its status", function()
    assert.equal("reverify", truv.route({ id = "t1", status = "mfa_error" }, NOW).route)
  end)

  it("routes suborder and order statuses", function()
    assert.equal("done", truv.route({ suborder = "completed" }, NOW).route)
    -- a failed refresh whose task status is unknown: never an automatic (billed) retry
    local d = truv.route({ suborder = "error" }, NOW)
    assert.equal("fix", d.route)
    assert.is_nil(d.retry_at)
    assert.equal("fix", truv.route({ order = "error" }, NOW).route)
    assert.equal("reverify", truv.route({ order = "expired" }, NOW).route)
    assert.equal("no_data", truv.route({ order = "no_data" }, NOW).route)
  end)

  it("routes every error kind", function()
    local kinds = { invalid = "fix", auth = "fix", not_found = "fix", throttled = "retry",
                    refresh_limit = "defer", quota = "defer", server = "retry",
                    network = "retry", protocol = "retry", api = "fix", internal = "fix",
                    expired = "reverify" }
    for kind, route in pairs(kinds) do
      local r = truv.route(errors.new(kind, nil, "x", { retry_at = NOW + 9 }), NOW)
      assert.equal(route, r.route, kind)
      if route == "retry" then assert.equal(NOW + 9, r.retry_at) end
    end
    assert.equal(NOW + 60, truv.route(errors.new("server", nil, "x"), NOW).retry_at)
  end)

  it("routes webhook events by type and status", function()
    assert.equal("done", truv.route({ event_type = "task-status-updated", status = "done",
                                      webhook_id = "w" }, NOW).route)
    assert.equal("reverify", truv.route({ event_type = "order-refresh-failed",
                                          status = "login_error", webhook_id = "w" }, NOW).route)
    assert.equal("fix", truv.route({ event_type = "order-refresh-failed", status = "completed",
                                     webhook_id = "w" }, NOW).route)
    -- Truv's generic failure says nothing of the cause: never an automatic retry
    local failed = truv.route({ event_type = "order-refresh-failed", status = "error",
                                webhook_id = "w" }, NOW)
    assert.equal("fix", failed.route)
    assert.equal("refresh_failed_unknown", failed.reason)
    assert.equal("reverify", truv.route({ event_type = "link-disconnected", webhook_id = "w" },
                                        NOW).route)
    assert.equal("wait", truv.route({ event_type = "employment-updated", webhook_id = "w" },
                                    NOW).route)
    assert.equal("done", truv.route({ event_type = "order-status-updated", status = "completed",
                                      webhook_id = "w" }, NOW).route)
    local r = truv.route({ event_type = "brand-new-event", webhook_id = "w" }, NOW)
    assert.equal("fix", r.route)
    assert.equal("unknown_event", r.reason)
  end)

  it("raises on something that is not an outcome", function()
    assert.has_error(function() truv.route(42) end)
    assert.has_error(function() truv.route{ foo = 1 } end)
  end)
end)

describe("combining the routes of a case's connections", function()
  local combine = require("truv.route").combine
  it("waits while any connection is unfinished, else shows what needs a person first", function()
    assert.equal("wait", combine{ { route = "done" }, { route = "wait" }, { route = "fix" } }.route)
    assert.equal("fix", combine{ { route = "done" }, { route = "reverify" }, { route = "fix" } }.route)
    assert.equal("reverify", combine{ { route = "done" }, { route = "reverify" } }.route)
    assert.equal("done", combine{ { route = "done" }, { route = "done" } }.route)
  end)
end)

describe("truv.router", function()
  it("overrides any mapping, by kind or by status name", function()
    local router = truv.router{ map = { task = { unavailable = "defer" }, login_error = "fix",
                                        order = { error = "retry" } } }
    assert.equal("defer", router:route({ task = "unavailable" }, NOW).route)
    assert.equal("fix", router:route({ task = "login_error" }, NOW).route)
    assert.equal("retry", router:route({ order = "error" }, NOW).route)
    -- the default table is untouched
    assert.equal("retry", truv.route({ task = "unavailable" }, NOW).route)
  end)

  it("lets a script set retry delays by reason", function()
    local router = truv.router{ delays = { unavailable = 120 } }
    assert.equal(NOW + 120, router:route({ task = "unavailable" }, NOW).retry_at)
  end)

  it("calls the route's handler with the decision, the case and the outcome", function()
    local seen
    local router = truv.router{ reverify = function(d, case, outcome)
      seen = { d.route, case.case_id, outcome.task }
      return "link sent"
    end }
    local d, res = router:dispatch({ task = "mfa_error" }, { case_id = "c-1" }, NOW)
    assert.equal("reverify", d.route)
    assert.equal("link sent", res)
    assert.same({ "reverify", "c-1", "mfa_error" }, seen)
    assert.equal("done", router:dispatch({ task = "done" }, { case_id = "c-2" }, NOW).route)
  end)

  it("reports a handler's error with the case, never swallowing it", function()
    local router = truv.router{ done = function() error("prefill service down") end }
    local d, err = router:dispatch({ task = "done" }, { case_id = "c-9" }, NOW)
    assert.is_nil(d)
    assert.equal("handler", err.kind)
    assert.equal("c-9", err.case)
    assert.matches("the done handler failed for case c%-9: .*prefill service down", err.message)
  end)

  it("refuses unknown routes, kinds and options", function()
    assert.has_error(function() truv.router{ map = { task = { done = "celebrate" } } } end)
    assert.has_error(function() truv.router{ map = { planet = { done = "done" } } } end)
    assert.has_error(function() truv.router{ sucess = function() end } end)
    assert.has_error(function() truv.router{ done = "not a function" } end)
  end)
end)
