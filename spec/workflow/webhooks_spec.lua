-- The webhook receiver fed with the sandbox's real, signed deliveries:
-- every event handled once however often it arrives, tampered ones refused,
-- stale ones ignored, refresh orders correlated to their originals, and
-- outcomes routed to the script's handlers.
local world = require "spec.support.world"
local sandbox = require "spec.support.sandbox"
local truv = require "truv"

describe("the webhook receiver with the sandbox's deliveries", function()
  local w, rx, receiver, handled, originals

  lazy_setup(function()
    w = world.new{ args = { "--seed-cases", "12", "--rng-seed", "3", "--rate-limit", "0",
                            "--mix", "active=1,credentials=1,mfa=1" } }
    rx = sandbox.receiver()
    w.sb:config{ webhook_url = rx.url, webhook_duplicates = 0.5 }
    handled = {}
    local function record(d, case, ev)
      handled[#handled + 1] = { route = d.route, reason = d.reason, case = case,
                                webhook_id = ev.webhook_id, type = ev.event_type }
    end
    receiver = truv.receiver{
      secrets = { "sandbox-previous-secret", w.sb.secret },   -- rotation: either one verifies
      router = truv.router{ done = record, reverify = record, retry = record, fix = record,
                            no_data = record, wait = record },
      client = w.client,
      clock = function() return w.now end,
    }
    originals = {}
    for _, state in ipairs{ "active", "credentials", "mfa" } do
      local case = w:case(state, "income")
      local fresh = assert(w.client:refresh_order(case.order_id, { products = { "income" } }))
      originals[fresh.id] = case.order_id
    end
    w:advance(120)   -- every task reaches its terminal status: the sandbox sends the events
    -- serve deliveries until the sandbox has nothing queued and every
    -- attempt it made has arrived
    assert(rx:pump(20, function(r)
      local s = w.sb:stats().webhooks
      return s.queued == 0 and s.attempts > 0 and #r.requests >= s.attempts
    end), "the sandbox's webhooks did not all arrive")
  end)
  lazy_teardown(function()
    if rx then rx:close() end
    if w then w:stop() end
  end)

  it("handles every event once, however often it was delivered", function()
    local seen, duplicates = {}, 0
    for _, req in ipairs(rx.requests) do
      local status, res = receiver:handle(req.body, req.headers)
      assert.equal(200, status, res.error and tostring(res.error))
      if res.duplicate then
        duplicates = duplicates + 1
        assert.is_true(seen[res.event.webhook_id])
      else
        seen[res.event.webhook_id] = true
      end
    end
    assert.is_true(duplicates > 0, "the sandbox sent duplicates")
    local per_id = {}
    for _, h in ipairs(handled) do per_id[h.webhook_id] = (per_id[h.webhook_id] or 0) + 1 end
    for id, n in pairs(per_id) do assert.equal(1, n, "webhook " .. id .. " handled " .. n .. " times") end
  end)

  it("routes the failed refreshes to reverify and the good one to done, with the original order", function()
    local routes = {}
    for _, h in ipairs(handled) do
      if h.type == "order-refresh-failed" or (h.type == "task-status-updated" and h.route ~= "wait") then
        if h.case.order_id and originals[h.case.order_id] then
          assert.equal(originals[h.case.order_id], h.case.original_order_id)
        end
        routes[h.reason] = h.route
      end
    end
    assert.equal("done", routes.done)
    assert.equal("reverify", routes.login_error)
    assert.equal("reverify", routes.mfa_error)
  end)

  it("refuses a tampered delivery with 401", function()
    local req = rx.requests[1]
    local body = req.body:gsub('"event_type"', '"event_typ3"', 1)
    local status, res = receiver:handle(body, req.headers)
    assert.equal(401, status)
    assert.equal("signature_mismatch", res.error.code)
    status = receiver:handle(req.body, {})
    assert.equal(401, status)
  end)

  it("ignores an event older than the last one seen for the same object", function()
    local task_events = {}
    for _, req in ipairs(rx.requests) do
      if req.json and req.json.event_type == "task-status-updated" then
        task_events[#task_events + 1] = req.json
      end
    end
    local last = task_events[#task_events]
    local stale = {}
    for k, v in pairs(last) do stale[k] = v end
    stale.webhook_id = string.rep("e", 32)
    stale.status = "login"
    stale.updated_at = "2000-01-01T00:00:00.000000Z"
    local body = sandbox.json.encode(stale)
    local status, res = receiver:handle(body, { ["x-webhook-sign"] = truv.webhook.sign(body, w.sb.secret) })
    assert.equal(200, status)
    assert.is_true(res.stale)
  end)

  it("answers 400 to a signed body that is not a Truv event", function()
    local body = '{"hello":"world"}'
    local status, res = receiver:handle(body, { ["X-Webhook-Sign"] = truv.webhook.sign(body, w.sb.secret) })
    assert.equal(400, status)
    assert.equal("protocol", res.error.kind)
  end)

  it("forgets an event whose handler failed, so Truv's retry is handled again", function()
    local calls = 0
    local r = truv.receiver{ secrets = w.sb.secret, router = truv.router{
      done = function() calls = calls + 1; if calls == 1 then error("pre-fill service down") end end,
      wait = function() end, reverify = function() end, fix = function() end } }
    local body
    for _, req in ipairs(rx.requests) do
      if req.json and req.json.event_type == "task-status-updated" and req.json.status == "done" then
        body = req
        break
      end
    end
    assert(body, "a task-status-updated done delivery")
    local status, res = r:handle(body.body, body.headers)
    assert.equal(500, status)
    assert.matches("pre%-fill service down", res.error.message)
    status = r:handle(body.body, body.headers)
    assert.equal(200, status)
    assert.equal(2, calls)
  end)
end)
