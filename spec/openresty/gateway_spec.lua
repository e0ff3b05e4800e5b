-- The example gateway (examples/openresty/nginx.conf and truv_gateway.lua,
-- adapted as its README says) in a real nginx with two workers, against a
-- sandbox whose webhooks point at it: refreshes of every connection state
-- routed, each refresh once on its combined route (one new link for a
-- two-employer refresh that failed, no retry beside it), signed webhooks
-- handled once across workers, tampered ones refused, and the refresh quota
-- holding across workers.
local openresty = require "spec.support.openresty"
local sandbox = require "spec.support.sandbox"
local truv = require "truv"

local json = sandbox.json

local STATES = { "active", "credentials", "mfa", "locked", "provider_down", "no_data",
                 "unsupported", "expired" }

describe("the OpenResty gateway example", function()
  local srv, sb, events

  lazy_setup(function()
    sb = sandbox.start{ args = { "--seed-cases", "120", "--rng-seed", "17", "--rate-limit", "0",
      "--mix", "active=4,expired=1,credentials=1,mfa=1,provider_down=1,no_data=1,locked=1," ..
               "unsupported=1" } }
    srv = openresty.start{
      env = { TRUV_CLIENT_ID = sb.client_id, TRUV_SECRET = sb.secret,
              TRUV_BASE_URL = sb.base_url, TRUV_PREVIOUS_SECRETS = "sandbox-previous-secret" },
      conf = openresty.example{
        workers = 2,
        listen = "reuseport",
        http = "    lua_shared_dict test_events 8m;\n    add_header X-Worker-Pid $pid always;",
        server = "        location = /_test/events { content_by_lua_block { " ..
                 "require('truv_handlers').dump() } }\n",
      },
    }
    sb:config{ webhook_url = srv.origin .. "/truv/webhooks", webhook_duplicates = 1 }
    events = {}
  end)

  lazy_teardown(function()
    if srv then srv:stop() end
    if sb then sb:stop() end
  end)

  -- Everything the handlers recorded so far (accumulated here: the gateway
  -- hands each record over once).
  local function collect()
    local status, body = srv:request("GET", "/_test/events")
    assert.equal(200, status)
    for _, e in ipairs(body) do events[#events + 1] = e end
    return events
  end

  local function webhooks_settled()
    local settled, s = sb:webhooks_settled()
    return settled and s.attempts > 0
  end

  local used = {}
  local function fresh_case(state, pred)
    for _, c in ipairs(sb:cases()) do
      if c.state == state and c.product == "income" and not used[c.case_id]
         and (not pred or pred(c)) then
        used[c.case_id] = true
        return c
      end
    end
    error("no unused " .. state .. " income case")
  end

  local function trigger(case)
    return srv:request("POST", "/renewals/" .. case.case_id .. "/refresh",
                       { order_id = case.order_id, product = case.product })
  end

  local function signed(body, secret)
    return { ["X-WEBHOOK-SIGN"] = truv.webhook.sign(body, secret or sb.secret) }
  end

  local function event_body(fields)
    local ev = { webhook_id = string.format("%032x", math.random(0, 2 ^ 40)),
                 event_type = "task-status-updated", event_created_at = "2026-01-01T00:00:00Z",
                 updated_at = "2026-01-01T00:00:00Z", user_id = "u1", template_id = json.null,
                 task_id = "t-" .. math.random(1, 1e9), link_id = "l1", product = "income",
                 data_source = "payroll", tracking_info = json.null, status = "login" }
    for k, v in pairs(fields or {}) do ev[k] = v end
    return json.encode(ev), ev.webhook_id
  end

  it("routes a refresh of every connection state, through cosockets and Truv's webhooks", function()
    local cases = {}
    for _, state in ipairs(STATES) do
      local case = fresh_case(state)
      cases[state] = case
      -- every one is refreshed: an old connection too (Truv's answer says it expired)
      local status, body = trigger(case)
      assert.equal(202, status, json.encode(body))
      assert.equal("wait", body.route)
      assert.equal(case.case_id, body.case)
      assert.matches("^%x+$", body.refresh_order_id)
      cases[state].refresh_order_id = body.refresh_order_id
    end
    sb:advance(60)   -- every task reaches its terminal status: the sandbox sends the events
    local want = { active = { "done", "completed" }, credentials = { "reverify", "login_error" },
                   expired = { "reverify", "login_error" },
                   mfa = { "reverify", "mfa_error" }, locked = { "reverify", "account_locked" },
                   provider_down = { "retry", "unavailable" }, no_data = { "no_data", "no_data" },
                   unsupported = { "fix", "not_supported" } }
    local final
    assert(sandbox.wait_until(function()
      collect()
      final = {}
      for _, e in ipairs(events) do
        -- each refresh reaches the handlers once on its route, its other events on wait
        if e.kind == "handled" and e.case_id and e.route ~= "wait" then
          assert.is_nil(final[e.case_id], e.case_id .. " handled twice")
          final[e.case_id] = e
        end
      end
      for state in pairs(want) do
        if not final[cases[state].case_id] then return false end
      end
      return webhooks_settled()
    end, 15, 0.05), "the sandbox's webhooks did not all reach the handlers")
    for state, w in pairs(want) do
      local e = final[cases[state].case_id]
      assert.equal(w[1], e.route, state)
      assert.equal(w[2], e.reason, state)
      assert.equal(cases[state].order_id, e.original_order_id, state)
      assert.equal(cases[state].refresh_order_id, e.refresh_order_id, state)
    end
    -- the retry route carries its time
    assert.is_number(final[cases.provider_down.case_id].retry_at)
    -- the "done" handler's slow work ran in a timer, through cosockets
    assert(sandbox.wait_until(function()
      for _, e in ipairs(collect()) do
        if e.kind == "later" and e.case_id == cases.active.case_id then return true end
      end
    end, 5), "the deferred work did not run")
    for _, e in ipairs(events) do
      if e.kind == "later" and e.case_id == cases.active.case_id then
        assert.is_true(e.ok, e.error)
        assert.equal("timer", e.phase)
      end
    end
    -- the webhooks said which links need the user: refreshing them again is refused
    -- locally, billing nothing, while a working link is refreshed
    local before = sb:stats().refresh.tasks_created
    for _, state in ipairs{ "expired", "credentials", "mfa", "locked" } do
      local status, body = trigger(cases[state])
      assert.equal(200, status, json.encode(body))
      assert.equal("reverify", body.route, state)
      assert.equal("expired", body.kind, state)
      assert.equal("connection_dead", body.reason, state)
    end
    assert.equal(before, sb:stats().refresh.tasks_created)
    assert.equal(202, (trigger(cases.active)))
    -- a provider outage also brings a link-disconnected, but Truv would serve a later
    -- refresh: it is not refused
    assert.equal(202, (trigger(cases.provider_down)))
  end)

  it("makes one new link per case and refresh, and never retries what only the user can fix",
     function()
    local function two_employers(c)
      return #c.employers == 2 and #(c.financial_accounts or {}) == 0
    end
    local both = fresh_case("active", two_employers)
    local mixed = fresh_case("active", two_employers)
    local function set(case, states)
      for i, c in ipairs(sb:connections(case.order_id)) do
        sb:set_state{ access_token = c.access_token, state = states[i] }
      end
    end
    set(both, { "credentials", "credentials" })
    set(mixed, { "credentials", "provider_down" })
    local created = sb:stats().orders.created
    for _, case in ipairs{ both, mixed } do
      local status, body = trigger(case)
      assert.equal(202, status, json.encode(body))
    end
    sb:advance(60)
    local acts, links
    local function tally()
      collect()
      acts, links = { [both.case_id] = {}, [mixed.case_id] = {} }, {}
      for _, e in ipairs(events) do
        if acts[e.case_id] then
          if e.kind == "handled" and e.route ~= "wait" then
            table.insert(acts[e.case_id], e)
          elseif e.kind == "link" then
            assert.is_true(e.ok, e.error)
            links[e.case_id] = (links[e.case_id] or 0) + 1
          end
        end
      end
      return links[both.case_id] and links[mixed.case_id] and webhooks_settled()
    end
    assert(sandbox.wait_until(tally, 15, 0.05), "the links were not made")
    -- a little longer: a second link would come from a later event's timer
    sandbox.wait_until(function() tally() return false end, 1, 0.1)
    for _, case in ipairs{ both, mixed } do
      local list = acts[case.case_id]
      assert.equal(1, #list, case.case_id .. ": " .. json.encode(list))
      assert.equal("reverify", list[1].route)
      assert.equal("login_error", list[1].reason)
      assert.equal(1, links[case.case_id])
    end
    assert.equal(2, #acts[both.case_id][1].by_route.reverify)
    -- the outage's connection is named for a later retry, the dead one only for the link
    assert.equal(1, #acts[mixed.case_id][1].by_route.reverify)
    assert.equal(1, #acts[mixed.case_id][1].by_route.retry)
    assert.equal(created + 2, sb:stats().orders.created)
  end)

  it("accepted every signed delivery and handled each webhook once, duplicates included", function()
    assert(sandbox.wait_until(webhooks_settled, 10))
    local s = sb:stats().webhooks
    assert.equal(0, s.failed)
    assert.is_true(s.duplicates > 0, "the sandbox sent duplicates")
    for _, d in ipairs(sb:webhooks()) do assert.equal(200, d.status) end
    local seen = {}
    for _, e in ipairs(collect()) do
      if e.kind == "handled" then
        assert.is_nil(seen[e.webhook_id], "webhook " .. tostring(e.webhook_id) .. " handled twice")
        seen[e.webhook_id] = true
      end
    end
  end)

  it("refuses tampered and unsigned deliveries with 401, and what is not an event with 400", function()
    local body = event_body()
    local headers = signed(body)
    local tampered = body:gsub('"login"', '"done"')
    local status, res = srv:request("POST", "/truv/webhooks", tampered, headers)
    assert.equal(401, status)
    assert.equal("signature_mismatch", res.error)
    status = srv:request("POST", "/truv/webhooks", body)
    assert.equal(401, status)
    status = srv:request("POST", "/truv/webhooks", body, { ["X-WEBHOOK-SIGN"] = "v1=zz" })
    assert.equal(401, status)
    local hello = '{"hello":"world"}'
    status = srv:request("POST", "/truv/webhooks", hello, signed(hello))
    assert.equal(400, status)
    status = srv:request("GET", "/truv/webhooks")
    assert.equal(405, status)
    -- the untampered body, and one signed with the previous secret, are fine
    status, res = srv:request("POST", "/truv/webhooks", body, headers)
    assert.equal(200, status)
    assert.equal("handled", res.result)
    local rotated = event_body()
    status = srv:request("POST", "/truv/webhooks", rotated, signed(rotated, "sandbox-previous-secret"))
    assert.equal(200, status)
  end)

  it("handles a webhook delivered 24 times at once exactly once, across both workers", function()
    local body, id = event_body{ status = "parse" }
    local reqs = {}
    for i = 1, 24 do reqs[i] = { "POST", "/truv/webhooks", body, signed(body) } end
    local handled, duplicate, workers = 0, 0, {}
    for _, r in ipairs(srv:concurrent(reqs, 20)) do
      assert.equal(200, r.status, r.raw)
      if r.body.result == "handled" then handled = handled + 1 end
      if r.body.result == "duplicate" then duplicate = duplicate + 1 end
      workers[r.headers["x-worker-pid"]] = true
    end
    assert.equal(1, handled)
    assert.equal(23, duplicate)
    local n = 0
    for _ in pairs(workers) do n = n + 1 end
    assert.equal(2, n, "both workers answered")
    local calls = 0
    for _, e in ipairs(collect()) do
      if e.webhook_id == id then calls = calls + 1 end
    end
    assert.equal(1, calls)
  end)

  it("forgets a webhook whose handler failed, so that Truv's retry is handled", function()
    local body = event_body{ event_type = "test-handler-fails" }
    local status = srv:request("POST", "/truv/webhooks", body, signed(body))
    assert.equal(500, status)
    status = srv:request("POST", "/truv/webhooks", body, signed(body))
    assert.equal(500, status)   -- handled again (and failing again), not a duplicate
  end)

  it("admits exactly 3 of 20 concurrent refresh triggers for one connection in 24 h", function()
    local case = fresh_case("active", function(c)
      return #c.employers == 1 and #(c.financial_accounts or {}) == 0
    end)
    local token = sb:connections(case.order_id)[1].access_token
    local before = sb:stats().refresh.by_access_token[sandbox.token_key(token)]
    local body = { order_id = case.order_id, product = case.product }
    local reqs = {}
    for i = 1, 20 do reqs[i] = { "POST", "/renewals/" .. case.case_id .. "/refresh", body } end
    local created, deferred, workers, refresh_ids = 0, 0, {}, {}
    local now = os.time()
    for _, r in ipairs(srv:concurrent(reqs, 30)) do
      workers[r.headers["x-worker-pid"]] = true
      if r.status == 202 then
        created = created + 1
        refresh_ids[r.body.refresh_order_id] = true
      else
        assert.equal(200, r.status, r.raw)
        assert.equal("defer", r.body.route, r.raw)
        assert.equal("quota", r.body.kind)
        assert.is_true(math.abs(r.body.not_before - (now + 86400)) < 60)
        deferred = deferred + 1
      end
    end
    assert.equal(3, created)
    assert.equal(17, deferred)
    local n = 0
    for _ in pairs(refresh_ids) do n = n + 1 end
    assert.equal(3, n)
    n = 0
    for _ in pairs(workers) do n = n + 1 end
    assert.equal(2, n, "both workers took triggers")
    local after = sb:stats().refresh.by_access_token[sandbox.token_key(token)]
    assert.equal(((before and before.created) or 0) + 3, after.created)
    -- and a later trigger is deferred too, until the window frees
    local status, res = trigger(case)
    assert.equal(200, status)
    assert.equal("defer", res.route)
  end)

  it("logged no error but the failing handler's", function()
    assert.same({}, srv:log_lines(nil, { "the case system is down" }))
  end)
end)
