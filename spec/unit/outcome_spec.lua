-- truv.outcome: whether a refresh is finished and what it produced, decided
-- once for polling (truv.wait), a run's webhooks (truv.inbox) and a
-- gateway's (truv.tracker).
local truv = require "truv"
local outcome = require "truv.outcome"

local NOW = 1800000000
local router = truv.router{}

local function ev(event_type, status, extra)
  local e = { event_type = event_type, status = status, employer_id = "s1", order_id = "r1",
              updated_at = NOW }
  for k, v in pairs(extra or {}) do e[k] = v end
  return e
end

-- A connection's state from webhook events, as the inbox and the tracker keep it.
local function from_events(events)
  local c = {}
  for _, e in ipairs(events) do
    local note = outcome.note(router, e)
    if note then outcome.apply(c, note) end
  end
  return c
end

describe("truv.outcome", function()
  it("calls a connection finished by its suborder status alone, and a missing one not", function()
    for _, s in ipairs{ "pending", "sent" } do assert.is_false(outcome.finished(router, s)) end
    for _, s in ipairs{ "completed", "no_data", "error", "expired", "skipped", "canceled" } do
      assert.is_true(outcome.finished(router, s), s)
    end
    assert.is_false(outcome.finished(router, nil))
    assert.is_false(outcome.all_finished(router, { connections = {
      { id = "s1", status = "completed" }, { id = "s2" } } }))
    assert.is_true(outcome.all_finished(router, { connections = {
      { id = "s1", status = "completed" }, { id = "s2", status = "error" } } }))
  end)

  it("routes a failure by its task's status, and one of unknown cause to fix", function()
    assert.equal("reverify", outcome.failure(router, "error", "login_error", nil, NOW).route)
    assert.equal("retry", outcome.failure(router, "error", "unavailable", nil, NOW).route)
    local d = outcome.failure(router, "error", "error", "generic", NOW)
    assert.same({ "fix", "refresh_failed_unknown", "generic" }, { d.route, d.reason, d.error_message })
    assert.equal("reverify", outcome.failure(router, "expired", nil, nil, NOW).route)
  end)

  it("takes from webhooks only what is final about a connection", function()
    assert.is_nil(outcome.note(router, ev("order-status-updated", "sent")))
    assert.is_nil(outcome.note(router, ev("task-status-updated", "parse", { tracking_info = "s1" })))
    assert.is_nil(outcome.note(router, ev("order-created", "pending")))
    assert.is_nil(outcome.note(router, ev("order-status-updated", "completed", { employer_id = 7 })))
    local n = outcome.note(router, ev("task-status-updated", "login_error",
                                      { tracking_info = "s1", task_id = "t1" }))
    assert.same({ type = "task-status-updated", id = "s1", order_id = "r1", status = "login_error",
                  task_id = "t1", at = NOW }, n)
  end)

  it("decides once a connection needs nothing more", function()
    local cases = {
      { { ev("order-status-updated", "completed") }, "done" },
      { { ev("order-status-updated", "no_data") }, "no_data" },
      -- a failed suborder waits for its cause
      { { ev("order-status-updated", "error") }, nil },
      { { ev("order-status-updated", "error"), ev("order-refresh-failed", "mfa_error") },
        "reverify" },
      { { ev("order-refresh-failed", "unavailable") }, "retry" },
      { { ev("order-refresh-failed", "error") }, "fix", "refresh_failed_unknown" },
      { { ev("order-refresh-failed", nil) }, nil },
      { { ev("task-status-updated", "done", { tracking_info = "s1" }) }, nil },
      { { ev("task-status-updated", "account_locked", { tracking_info = "s1" }) }, "reverify" },
      -- the task's own word wins over the failure's status
      { { ev("task-status-updated", "login_error", { tracking_info = "s1" }),
          ev("order-refresh-failed", "error") }, "reverify" },
    }
    for i, c in ipairs(cases) do
      local d = outcome.decision(router, from_events(c[1]), NOW)
      assert.equal(c[2], d and d.route, "case " .. i)
      if c[3] then assert.equal(c[3], d.reason, "case " .. i) end
    end
  end)

  it("decides a finished order as polling and webhooks both must", function()
    -- each connection: its final suborder status and its task's final status
    local statuses = {
      { "completed" }, { "no_data" }, { "error", "login_error" }, { "error", "unavailable" },
      { "error", "error" }, { "error", "config_error" }, { "expired", "mfa_error" },
      { "canceled", "done" },
    }
    for _, st in ipairs(statuses) do
      local model = { connections = { { id = "s1", kind = "employers", status = st[1] } } }
      local results, decision = outcome.decide(router, model, NOW, function(_, r)
        r.task_status = st[2]
      end)
      -- the same connection told by webhooks (the task first, then the suborder)
      local events = {}
      if st[2] then
        events[1] = ev("task-status-updated", st[2], { tracking_info = "s1" })
      end
      events[#events + 1] = ev("order-status-updated", st[1])
      local d = outcome.decision(router, from_events(events), NOW)
      assert.equal(decision.route, d and d.route, st[1] .. "/" .. tostring(st[2]))
      assert.equal(decision.reason, d.reason)
      assert.equal(decision.route, results[1].decision.route)
    end
  end)

  it("gives up deciding when a failure's cause cannot be learned, and says an empty order", function()
    local model = { connections = { { id = "s1", status = "completed" },
                                    { id = "s2", status = "error" } } }
    assert.is_nil(outcome.decide(router, model, NOW, function() return false end))
    local results, d, taught = outcome.decide(router, { connections = {} }, NOW)
    assert.same({}, results)
    assert.same({ route = "fix", reason = "no_connections", outcome = "order", final = true }, d)
    assert.same({}, taught)
  end)

  it("teaches what a refresh ended in: done as alive, a failure only the user can fix as dead", function()
    local model = { connections = { { id = "s1", status = "completed", access_token = "tok-a-1234" },
                                    { id = "s2", status = "error", access_token = "tok-b-1234" } } }
    local _, _, taught = outcome.decide(router, model, NOW, function(_, r)
      r.task_status = "login_error"
      return NOW - 5
    end)
    local store = truv.quota.memory()
    outcome.remember(store, taught, NOW)
    assert.equal(NOW, store:facts(truv.quota.key("tok-a-1234")).alive_at)
    local f = store:facts(truv.quota.key("tok-b-1234"))
    assert.same({ NOW - 5, "login_error" }, { f.dead_at, f.dead_reason })
  end)
end)
