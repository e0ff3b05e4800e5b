-- truv.renewal.run with wait = "webhook" against the sandbox: cases wait
-- for their refreshes' webhooks (received by core.listener) instead of
-- polling, and end up routed exactly as a polling run of the same cases
-- routes them; duplicates change nothing, a tampered delivery is refused,
-- and when the webhooks stop the cases fall back to polling.
--
-- Each run has a sandbox of its own, started with the same seed, so the
-- same case ids carry the same connection states in every run.
local sandbox = require "spec.support.sandbox"
local files = require "spec.support.files"
local truv = require "truv"
local core = require "truv.core"
local renewal = require "truv.renewal"
local inbox = require "truv.inbox"

local CASES = 32
local SB_ARGS = { "--seed-cases", tostring(CASES), "--rng-seed", "11", "--rate-limit", "0",
                  "--realtime", "--time-scale", "20", "--provider-down-s", "1000000",
                  "--mix", "active=3,credentials=1,mfa=1,no_data=1,unsupported=1,provider_down=1" }

-- What each state routes to, whichever way the run waits.
local EXPECTED = {
  active = { "done", "completed" }, credentials = { "reverify", "login_error" },
  mfa = { "reverify", "mfa_error" }, no_data = { "no_data", "no_data" },
  unsupported = { "fix", "not_supported" }, provider_down = { "retry", "unavailable" },
}

local function tmpdir() return files.tmpdir("truv-webhook-spec") end

local function client_of(sb)
  return { client_id = sb.client_id, secret = sb.secret, base_url = sb.base_url }
end

-- A router whose handlers count their calls per case.
local function counting_router()
  local calls = {}
  local function note(_, case) calls[case.case_id] = (calls[case.case_id] or 0) + 1 end
  return truv.router{ done = note, reverify = note, retry = note, defer = note, no_data = note,
                      fix = note }, calls
end

-- case id -> { route, reason } from a journal.
local function routes_of(path)
  local j = assert(core.journal_open(path))
  local out = {}
  for rec in j:each{} do out[rec.case_id] = { rec.route, rec.reason } end
  j:close()
  return out
end

-- The reads a run made besides the refreshes themselves: GETs of orders,
-- of order events and of refresh tasks.
local function reads(sb)
  local by = sb:stats().requests.by_endpoint
  local function total(key)
    local n = 0
    for _, count in pairs(by[key] or {}) do n = n + count end
    return n
  end
  return { orders = total("GET /v1/orders/{id}/"), events = total("GET /v1/orders/{id}/events/"),
           tasks = total("GET /v1/refresh/tasks/{id}/") }
end

local function count_routes(routes, route)
  local n = 0
  for _, r in pairs(routes) do n = n + (r[1] == route and 1 or 0) end
  return n
end

-- The connections of a refresh order, as the sandbox has them.
local function suborder_of(sb, order_id)
  local status, doc = sb:request("GET", "orders/" .. order_id .. "/")
  assert(status == 200, "cannot read refresh order " .. order_id)
  local list = (doc.employers and doc.employers[1]) and doc.employers or doc.financial_accounts
  return list[1].id
end

local function post_hook(port, body, sign)
  return sandbox.http("127.0.0.1", port, "POST", "/truv/webhooks",
                      { ["Content-Type"] = "application/json", ["X-WEBHOOK-SIGN"] = sign }, body)
end

-- Each run has a quota store of its own (the sandboxes of this file, all
-- seeded alike, make the same access tokens: one shared store would carry one
-- sandbox's refreshes and dead connections into the next).
describe("renewal.run with wait = \"webhook\"", function()
  local dir, states
  local poll = {}   -- the polling run: routes, reads

  lazy_setup(function()
    dir = tmpdir()
    local sb = sandbox.start{ args = SB_ARGS }
    states = {}
    for _, c in ipairs(sb:cases()) do states[c.case_id] = c.state end
    local f = assert(io.open(dir .. "/cases.json", "wb"))
    f:write(sandbox.json.encode{ cases = sb:cases() })
    f:close()
    local router, calls = counting_router()
    local summary = assert(renewal.run{ cases = dir .. "/cases.json", journal = dir .. "/poll",
      quota = dir .. "/poll-quota.db",
      client = client_of(sb), router = router, concurrency = 8, rate_per_minute = 0,
      poll = { interval_s = 0.25 } })
    assert.equal(CASES, summary.total)
    assert.is_nil(summary.webhooks)
    poll.routes, poll.reads, poll.calls = routes_of(dir .. "/poll"), reads(sb), calls
    sb:shutdown()
  end)

  lazy_teardown(function()
    if dir then os.execute("rm -rf '" .. dir .. "'") end
  end)

  it("polls and routes each state as expected (the reference run)", function()
    for id, r in pairs(poll.routes) do
      assert.same(EXPECTED[states[id]], r, id .. " (" .. states[id] .. ")")
      assert.equal(1, poll.calls[id])
    end
  end)

  it("routes every case as polling does, with far fewer reads, duplicates handled once and "
     .. "tampered deliveries refused", function()
    local sb = sandbox.start{ args = SB_ARGS }
    local l = assert(core.listener{ secrets = sb.secret, port = 0 })
    sb:config{ webhook_url = "http://127.0.0.1:" .. l.port .. "/truv/webhooks",
               webhook_duplicates = 0.3 }
    local router, calls = counting_router()
    local forged, routed = {}, {}
    local summary = assert(renewal.run{ cases = dir .. "/cases.json", journal = dir .. "/hook",
      quota = dir .. "/hook-quota.db",
      client = client_of(sb), router = router, concurrency = 8, rate_per_minute = 0,
      poll = { interval_s = 0.25 }, wait = "webhook",
      webhook = { listener = l, fallback_s = 60 },
      on_event = function(ev)
        if ev.event == "routed" then routed[ev.case_id] = (routed[ev.case_id] or 0) + 1 end
        -- the first failing case's refresh gets a forged "completed" before its real events
        if ev.event == "sent" and states[ev.case_id] == "credentials" and not forged.case then
          forged.case = ev.case_id
          local body = sandbox.json.encode{
            webhook_id = "f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0", event_type = "order-status-updated",
            updated_at = "2100-01-01T00:00:00.000000Z", order_id = ev.refresh_order_id,
            employer_id = suborder_of(sb, ev.refresh_order_id), status = "completed" }
          -- signed with another secret, and signed right but altered afterwards
          forged[1] = post_hook(l.port, body, "v1=" .. sandbox.hmac_sha256_hex("sandbox-x", body))
          local sign = "v1=" .. sandbox.hmac_sha256_hex(sb.secret, body)
          forged[2] = post_hook(l.port, (body:gsub("completed", "no_data")), sign)
          -- someone else's order, signed right: acknowledged, no effect
          local other = sandbox.json.encode{
            webhook_id = "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1", event_type = "order-status-updated",
            order_id = "0123456789abcdef0123456789abcdef",
            employer_id = "fedcba9876543210fedcba9876543210", status = "completed" }
          forged[3] = post_hook(l.port, other, "v1=" .. sandbox.hmac_sha256_hex(sb.secret, other))
        end
      end })
    -- the last events (and their duplicates) may still be on their way
    assert(sandbox.wait_until(function() return sb:stats().webhooks.queued == 0 end, 10))
    local hooks = sb:stats().webhooks
    local r = reads(sb)
    sb:shutdown()
    local lstats = l:stats()
    l:close()

    assert.equal(CASES, summary.total)
    -- routed exactly as the polling run, each case once, its handler once
    local hook_routes = routes_of(dir .. "/hook")
    for id, want in pairs(poll.routes) do
      assert.same(want, hook_routes[id], id .. " (" .. states[id] .. ")")
      assert.equal(1, calls[id], id)
      assert.equal(1, routed[id], id)
    end
    -- every refresh settled by its webhooks, none by the fallback
    local w = summary.webhooks
    assert.equal(CASES, w.settled)
    assert.equal(0, w.fallbacks)
    -- one read of each refresh order at the end (for the done handler), against the
    -- polling run's repeated reads, events and tasks; the originals are read alike
    local originals = CASES + count_routes(poll.routes, "reverify")
    local looked_up = 1   -- the forgery's suborder, read by this spec
    assert.equal(CASES, r.orders - originals - looked_up)
    assert.equal(0, r.events)
    assert.equal(0, r.tasks)
    local polled = poll.reads.orders - originals + poll.reads.events + poll.reads.tasks
    assert.is_true(polled >= 2 * CASES, "polling read " .. polled .. " times")
    print(string.format("\n  reads besides the originals: polling %d (orders %d, events %d, "
                        .. "tasks %d), webhooks %d", polled, poll.reads.orders - originals,
                        poll.reads.events, poll.reads.tasks, r.orders - originals - looked_up))
    -- duplicates: recognised (those that came before the run ended) and changed nothing:
    -- each case was routed and handled once, above
    assert.is_true(w.duplicates > 0)
    assert.is_true(w.duplicates <= hooks.duplicates)
    assert.equal(hooks.delivered + hooks.duplicates + 1, lstats.accepted)   -- + someone else's
    -- the forgeries: refused by the listener, the case routed as polling routed it
    assert.equal(401, forged[1])
    assert.equal(401, forged[2])
    assert.equal(2, lstats.unauthorized)
    assert.same(EXPECTED.credentials, hook_routes[forged.case])
    -- someone else's delivery: accepted, kept a while, used by nobody
    assert.equal(200, forged[3])
    assert.is_true(w.early >= 1)
    assert.equal(0, w.dropped)
  end)

  it("falls back to polling when the webhooks stop mid-run", function()
    local sb = sandbox.start{ args = SB_ARGS }
    local l = assert(core.listener{ secrets = sb.secret })
    sb:config{ webhook_url = l:url() }
    local routed, fallbacks = 0, 0
    local summary = assert(renewal.run{ cases = dir .. "/cases.json", journal = dir .. "/off",
      quota = dir .. "/off-quota.db",
      client = client_of(sb), concurrency = 8, rate_per_minute = 0,
      -- about 10 cases in progress at once: the last ones start after
      -- the webhooks stopped
      memory_mb = 1,
      poll = { interval_s = 0.25 }, wait = "webhook",
      webhook = { listener = l, fallback_s = 3 },
      on_event = function(ev)
        if ev.event == "routed" then
          routed = routed + 1
          if routed == 12 then sb:config{ webhook_url = "" } end   -- Truv stops calling
        elseif ev.event == "webhook_fallback" then
          fallbacks = fallbacks + 1
        end
      end })
    sb:shutdown()
    l:close()
    assert.equal(CASES, summary.total)
    assert.same(poll.routes, routes_of(dir .. "/off"))
    local w = summary.webhooks
    assert.is_true(w.settled > 0)
    assert.is_true(w.fallbacks > 0)
    assert.equal(fallbacks, w.fallbacks)
    assert.equal(CASES, w.settled + w.fallbacks)
  end)

  it("makes its own listener from options, and resumes a refresh sent by an earlier run",
     function()
    local sb = sandbox.start{ args = SB_ARGS }
    -- a listener the run makes on a port taken here first: no run at all
    local taken = assert(core.listener{ secrets = sb.secret })
    local summary, err = renewal.run{ cases = dir .. "/cases.json", journal = dir .. "/busy",
      quota = dir .. "/busy-quota.db",
      client = client_of(sb), rate_per_minute = 0, wait = "webhook",
      webhook = { listener = { port = taken.port } } }
    assert.is_nil(summary)
    assert.equal("network", err.kind)
    taken:close()
    -- a case whose refresh a killed run sent: its journal says "sent"
    local case = sb:cases()[1]
    local status, fresh = sb:request("POST", "orders/" .. case.order_id .. "/",
                                     { products = { case.product } })
    assert.equal(200, status)
    local j = assert(core.journal_open(dir .. "/resume"))
    j:put(case.case_id, { state = "sent", refresh_order_id = fresh.id, order_id = case.order_id,
                          input = core.encode{ case_id = case.case_id, order_id = case.order_id,
                                               product = case.product } })
    j:close()
    assert(sandbox.wait_until(function()
      local _, doc = sb:request("GET", "orders/" .. fresh.id .. "/")
      for _, list in ipairs({ doc.employers, doc.financial_accounts }) do
        for _, sub in ipairs(list) do
          if sub.status == "pending" then return false end
        end
      end
      return true
    end, 10, 0.1), "the refresh did not finish")
    local got = {}
    summary = assert(renewal.run{ journal = dir .. "/resume",
      quota = dir .. "/resume-quota.db", client = client_of(sb),
      rate_per_minute = 0, poll = { interval_s = 0.25 }, wait = "webhook",
      webhook = { listener = { port = 0 }, fallback_s = 30 },
      on_event = function(ev)
        if ev.event == "routed" then got[#got + 1] = ev end
      end })
    sb:shutdown()
    assert.equal(1, summary.total)
    assert.equal(1, #got)
    assert.equal(fresh.id, got[1].refresh_order_id)
    assert.equal(EXPECTED[case.state][1], got[1].route)
  end)

  it("refuses a wait mode it does not know", function()
    assert.has_error(function()
      renewal.run{ journal = dir .. "/bad", client = { client_id = "x", secret = "sandbox-x" },
                   wait = "push" }
    end, "renewal.run: 'wait' must be \"poll\" or \"webhook\", got push")
  end)
end)

describe("truv-renew --wait webhook", function()
  local SRC = os.getenv("TRUV_SOURCE_DIR") or "."

  local function renew(sb, dir, args)
    local cmd = string.format("TRUV_CLIENT_ID=%s TRUV_SECRET=%s lua5.4 %s/bin/truv-renew "
                              .. "--base-url %s --rate 0 --journal %s/cli.journal %s "
                              .. ">%s/out 2>%s/err </dev/null", sb.client_id, sb.secret, SRC,
                              sb.base_url, dir, args, dir, dir)
    local _, _, code = os.execute(cmd)
    return code, files.slurp(dir .. "/out"), files.slurp(dir .. "/err")
  end

  it("receives webhooks on --listen, says where, and reports what came", function()
    local dir = tmpdir()
    local sb = sandbox.start{ args = SB_ARGS }
    local f = assert(io.open(dir .. "/cases.json", "wb"))
    f:write(sandbox.json.encode{ cases = sb:cases() })
    f:close()
    -- a port free a moment ago, given to the sandbox before the run starts
    local probe = assert(core.listener{ secrets = sb.secret })
    local port = probe.port
    probe:close()
    local url = "http://127.0.0.1:" .. port .. "/truv/webhooks"
    sb:config{ webhook_url = url, webhook_duplicates = 0.2 }
    local code, out, err = renew(sb, dir, "--json --wait webhook --listen 127.0.0.1:" .. port
                                           .. " " .. dir .. "/cases.json")
    sb:shutdown()
    assert.equal(0, code, err)
    local first = sandbox.json.decode(err:match("^[^\n]+"))
    assert.equal("webhook_listening", first.event)
    assert.equal(url, first.url)
    assert.matches("webhooks: " .. CASES .. " refreshes settled by webhook, 0 polled after "
                   .. "waiting", out, 1, true)
    os.execute("rm -rf '" .. dir .. "'")
  end)

  it("documents the options and refuses bad ones", function()
    local dir = tmpdir()
    local sb = { client_id = "x", secret = "sandbox-x", base_url = "http://127.0.0.1:9/v1/" }
    local code, out = renew(sb, dir, "--help")
    assert.equal(0, code)
    for _, opt in ipairs{ "--wait poll|webhook", "--listen HOST:PORT", "--webhook-path",
                          "--webhook-fallback" } do
      assert.matches(opt, out, 1, true)
    end
    local err
    code, out, err = renew(sb, dir, "--wait push cases.csv")
    assert.equal(2, code)
    assert.equal("", out)
    assert.matches("--wait: 'poll' or 'webhook'", err, 1, true)
    code, out, err = renew(sb, dir, "--listen nowhere cases.csv")
    assert.equal(2, code)
    assert.equal("", out)
    assert.matches("--listen: HOST:PORT expected", err, 1, true)
    code, out, err = renew(sb, dir, "--wait poll --listen 127.0.0.1:0 cases.csv")
    assert.equal(2, code)
    assert.matches("go with --wait webhook", err, 1, true)
    assert.equal("", out)
    os.execute("rm -rf '" .. dir .. "'")
  end)
end)

describe("truv.inbox", function()
  it("drops what is not an event, handles a duplicate once, and keeps early events a while",
     function()
    local dropped = {}
    local box = assert(inbox.new{ secrets = "sandbox-secret", listener = { port = 0 },
                                  early_max = 2, on_dropped = function(info)
                                    dropped[#dropped + 1] = info
                                  end })
    local function deliver(body)
      local sign = "v1=" .. sandbox.hmac_sha256_hex("sandbox-secret", body)
      return post_hook(box.listener.port, body, sign)
    end
    local function event(id, sub, status)
      return sandbox.json.encode{ webhook_id = id, event_type = "order-status-updated",
                                  order_id = "00000000000000000000000000000001",
                                  employer_id = sub, status = status }
    end
    assert.equal(200, deliver("not json"))                 -- authentic, but no event
    assert.equal(200, deliver(event("w1", "s1", "completed")))
    assert.equal(200, deliver(event("w1", "s1", "completed")))   -- the same delivery again
    assert.equal(200, deliver(event("w2", "s2", "pending")))     -- nothing final
    assert.equal(200, deliver(event("w3", "s3", "error")))
    assert.equal(200, deliver(event("w4", "s4", "no_data")))     -- the oldest early one goes
    assert.equal(0, box:tick())
    local st = box:stats()
    assert.same({ 400 }, { dropped[1].status })
    assert.equal("malformed_json", dropped[1].reason)
    assert.equal(6, st.received)
    assert.equal(1, st.dropped)
    assert.equal(1, st.duplicates)
    assert.equal(1, st.ignored)
    assert.equal(3, st.early)
    -- a refresh order registering now finds what is left of its early events
    local w = box:watch({ id = "00000000000000000000000000000001", connections = {
      { kind = "employers", id = "s3", status = "pending" },
      { kind = "employers", id = "s4", status = "pending" } } })
    assert.is_true(w:settled())
    assert.equal("no_data", w.connections.s4.suborder)
    local v = box:watch({ id = "00000000000000000000000000000001", connections = {
      { kind = "employers", id = "s1", status = "pending" } } })
    assert.is_false(v:settled())                           -- s1's event was let go
    box:unwatch(w)
    box:unwatch(v)
    assert.equal(0, box:stats().watching)
    box:close()
  end)

  it("reads once at the fallback and waits again for a refresh that is only slow", function()
    -- every task takes 2.5 s: longer than the fallback (1 s), not lost
    local sb = sandbox.start{ args = { "--seed-cases", "1", "--mix", "active=1", "--rate-limit",
                                       "0", "--realtime", "--task-duration", "2.5",
                                       "--task-duration-spread", "0" } }
    local box = assert(inbox.new{ secrets = sb.secret, listener = { port = 0 } })
    sb:config{ webhook_url = box.listener:url() }
    local client = assert(truv.new(client_of(sb)))
    local c = sb:cases()[1]
    local fresh = assert(client:refresh_order(c.order_id, { products = { c.product } },
                                              { answer = "model" }))
    local before = reads(sb).orders
    local result, err, via = box:wait_for_refresh(client, fresh, { fallback_s = 1,
                                                                   poll = { interval_s = 0.1 } })
    assert(result, tostring(err))
    -- settled by its webhooks after the fallback's read (1 s) found it
    -- running and the next wait (2 s) began: that read and the final one,
    -- where polling every 0.1 s growing by half would have made about six
    assert.equal("webhook", via)
    assert.is_true(result.finished)
    assert.equal(2, reads(sb).orders - before)
    assert.equal(0, box:stats().fallbacks)
    -- and when the webhooks are lost, the fallback's reads find it finished
    sb:config{ webhook_url = "" }
    fresh = assert(client:refresh_order(c.order_id, { products = { c.product } },
                                        { answer = "model", not_within = false }))
    before = reads(sb).orders
    result, err, via = box:wait_for_refresh(client, fresh, { fallback_s = 1,
                                                             poll = { interval_s = 0.1 } })
    assert(result, tostring(err))
    assert.equal("fallback", via)
    assert.is_true(result.finished)
    -- reads 1 and 3 s after the send (the waits doubling): at most 3
    assert.is_true(reads(sb).orders - before <= 3, (reads(sb).orders - before) .. " reads")
    assert.equal(1, box:stats().fallbacks)
    box:close()
    client:close()
    sb:shutdown()
  end)

  it("gives the answer polling gives, from the webhooks and one read", function()
    local sb = sandbox.start{ args = SB_ARGS }
    local box = assert(inbox.new{ secrets = sb.secret, listener = { port = 0 } })
    sb:config{ webhook_url = box.listener:url() }
    local client = assert(truv.new(client_of(sb)))
    local by_state = {}
    for _, c in ipairs(sb:cases()) do by_state[c.state] = by_state[c.state] or c end
    for state, c in pairs(by_state) do
      local fresh = assert(client:refresh_order(c.order_id, { products = { c.product } },
                                                { answer = "model" }))
      local result, err, via = box:wait_for_refresh(client, fresh, { fallback_s = 30 })
      assert(result, tostring(err))
      assert.equal("webhook", via, state)
      assert.is_true(result.finished)
      assert.equal(fresh.id, result.order.id)
      local polled = assert(client:wait_for_refresh(fresh.id))
      assert.same({ polled.decision.route, polled.decision.reason },
                  { result.decision.route, result.decision.reason }, state)
      assert.same(EXPECTED[state], { result.decision.route, result.decision.reason })
      for i, conn in ipairs(result.connections) do
        assert.equal(polled.connections[i].id, conn.id)
        assert.equal(polled.connections[i].task_status, conn.task_status)
      end
    end
    assert.equal(0, box:stats().watching)
    box:close()
    client:close()
    sb:shutdown()
  end)
end)
