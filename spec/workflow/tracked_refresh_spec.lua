-- One decision per case and refresh order, from the sandbox's real webhooks:
-- a two-employer refresh that fails sends an order-refresh-failed (and task
-- and link events) per employer; handed to the handlers one by one, the
-- applicant got two new verification links, and a refresh with one
-- connection needing the user and one provider outage was routed both
-- retry (a billed refresh of both, the dead one included) and reverify. A
-- receiver with a tracker hands the handlers each tracked refresh once, on
-- the combined route, with what each connection needs.
local world = require "spec.support.world"
local sandbox = require "spec.support.sandbox"
local truv = require "truv"

describe("a receiver following refreshes to one decision", function()
  local w, rx, cases

  lazy_setup(function()
    w = world.new{ args = { "--seed-cases", "30", "--rng-seed", "5", "--rate-limit", "0",
                            "--mix", "active=1" } }
    rx = sandbox.receiver()
    w.sb:config{ webhook_url = rx.url, webhook_duplicates = 0.3 }
    -- three two-employer income cases: both connections dead; one dead and one whose
    -- provider is down; one dead and one fine
    local two = {}
    for _, c in ipairs(w.cases) do
      if #c.employers == 2 and c.product == "income" then two[#two + 1] = c end
    end
    assert(#two >= 3, "not enough two-employer cases")
    local plans = { both_dead = { "credentials", "credentials" },
                    dead_and_down = { "credentials", "provider_down" },
                    dead_and_fine = { "mfa", "active" } }
    cases = {}
    local i = 0
    for name, states in pairs(plans) do
      i = i + 1
      local case = two[i]
      local conns = w:connections(case.order_id)
      for k = 1, 2 do w.sb:set_state{ access_token = conns[k].access_token, state = states[k] } end
      local fresh = assert(w.client:refresh_order(case.order_id, { products = { "income" } }))
      cases[name] = { case = case, refresh = fresh.id,
                      suborders = { fresh.employers[1].id, fresh.employers[2].id },
                      states = states }
    end
    w:advance(120)
    assert(rx:pump(20, function(r)
      local s = w.sb:stats().webhooks
      return s.queued == 0 and s.attempts > 0 and #r.requests >= s.attempts
    end), "the sandbox's webhooks did not all arrive")
  end)

  lazy_teardown(function()
    if rx then rx:close() end
    if w then w:stop() end
  end)

  -- Feeds every delivery to a receiver made with `opts`; returns the handler
  -- calls per case: { { route =, decision =, event_type = }, ... }.
  local function feed(opts)
    local by_original = {}
    for name, c in pairs(cases) do by_original[c.case.order_id] = name end
    local calls = {}
    local function handler(route)
      return function(d, case, ev)
        local id = case.case_id or by_original[case.original_order_id] or "?"
        calls[id] = calls[id] or {}
        table.insert(calls[id], { route = route, decision = d, event_type = ev.event_type })
      end
    end
    local spec = {}
    for _, r in ipairs{ "done", "reverify", "retry", "defer", "no_data", "fix", "wait" } do
      spec[r] = handler(r)
    end
    local o = { secrets = w.sb.secret, router = truv.router(spec), dedupe = "memory",
                clock = function() return w.now end }
    for k, v in pairs(opts) do o[k] = v end
    local receiver = assert(truv.receiver(o))
    if receiver.tracker then
      for name, c in pairs(cases) do
        assert(receiver:track(assert(w.client:get_order(c.refresh)),
                              { case_id = name, original_order_id = c.case.order_id }))
      end
    end
    for _, req in ipairs(rx.requests) do
      local status, res = receiver:handle(req.body, req.headers)
      assert.equal(200, status, res.error and tostring(res.error))
    end
    return calls
  end

  local function acting(list)
    local out = {}
    for _, c in ipairs(list or {}) do
      if c.route ~= "wait" then out[#out + 1] = c end
    end
    return out
  end

  it("used to hand each connection's events on: two links, retry and reverify", function()
    -- the receiver as it was, without a tracker (refresh orders told by their original)
    local originals = {}
    for _, c in pairs(cases) do originals[c.refresh] = c.case.order_id end
    local calls = feed{ originals = function(id) return originals[id] end }
    local function count(name, route, event_type)
      local n = 0
      for _, c in ipairs(calls[name] or {}) do
        if c.route == route and c.event_type == event_type then n = n + 1 end
      end
      return n
    end
    assert.equal(2, count("both_dead", "reverify", "order-refresh-failed"))
    assert.equal(1, count("dead_and_down", "reverify", "order-refresh-failed"))
    assert.equal(1, count("dead_and_down", "retry", "order-refresh-failed"))
  end)

  it("calls one handler once per refresh, on the combined route", function()
    local calls = feed{ tracker = truv.tracker.memory{ clock = function() return w.now end } }
    local want = { both_dead = "reverify", dead_and_down = "reverify", dead_and_fine = "reverify" }
    for name, route in pairs(want) do
      local acts = acting(calls[name])
      assert.equal(1, #acts, name .. ": " .. #acts .. " handler calls")
      assert.equal(route, acts[1].route, name)
      local d = acts[1].decision
      assert.equal(cases[name].refresh, d.refresh_order_id)
      assert.equal(2, #d.connections)
      -- the intermediate events reached `wait`, each with its own route kept
      assert.is_true(#calls[name] > 1)
      for _, c in ipairs(calls[name]) do
        if c.route == "wait" then assert.is_table(c.decision.connection) end
      end
    end
    -- what each connection needs: never a refresh of the one only the user can fix
    local d = acting(calls.dead_and_down)[1].decision
    assert.same({ cases.dead_and_down.suborders[1] }, d.by_route.reverify)
    assert.same({ cases.dead_and_down.suborders[2] }, d.by_route.retry)
    assert.equal("login_error", d.reason)
    d = acting(calls.both_dead)[1].decision
    table.sort(d.by_route.reverify)
    local both = { cases.both_dead.suborders[1], cases.both_dead.suborders[2] }
    table.sort(both)
    assert.same(both, d.by_route.reverify)
    assert.is_nil(d.by_route.retry)
    d = acting(calls.dead_and_fine)[1].decision
    assert.same({ cases.dead_and_fine.suborders[2] }, d.by_route.done)
    assert.equal("mfa_error", d.reason)
  end)

  it("hands a refresh on again when its handler failed, so that Truv's retry is acted on", function()
    local tracker = truv.tracker.memory()
    local failing, acted = true, 0
    local function act(d, case)
      if case.case_id and d.route ~= "wait" then
        acted = acted + 1
        if failing then error("the case system is down") end
      end
    end
    local receiver = assert(truv.receiver{ secrets = w.sb.secret, dedupe = "memory",
      tracker = tracker, router = truv.router{ reverify = act, retry = act, done = act },
      clock = function() return w.now end })
    local c = cases.both_dead
    assert(receiver:track(assert(w.client:get_order(c.refresh)),
                          { case_id = "both", original_order_id = c.case.order_id }))
    local failed_at
    for i, req in ipairs(rx.requests) do
      local status = receiver:handle(req.body, req.headers)
      assert.is_true(status == 200 or status == 500)
      if status == 500 then
        failed_at = i
        break
      end
    end
    assert.is_number(failed_at, "the handler never failed")
    assert.equal(1, acted)
    failing = false
    -- Truv delivers it again: acted on this time, and once only whatever follows
    local last = rx.requests[failed_at]
    assert.equal(200, (receiver:handle(last.body, last.headers)))
    assert.equal(2, acted)
    for i = failed_at + 1, #rx.requests do
      assert.equal(200, (receiver:handle(rx.requests[i].body, rx.requests[i].headers)))
    end
    assert.equal(2, acted)
    assert.same({ case_id = "both", original_order_id = c.case.order_id,
                  refresh_order_id = c.refresh, connections = c.suborders },
                receiver:tracked(c.suborders[1]))
  end)
end)
