-- The client's edges, as lua-resty libraries have them: an error prints and
-- concatenates like its line, a closed client answers nil, err, a wrong
-- argument raises at the caller's line for every public method, timeouts in
-- milliseconds for the client and for one call, and telemetry (hooks,
-- counters, loggers) that never sees a header or a body and never breaks a
-- call.
local truv = require "truv"
local core = require "truv.core"
local errors = require "truv.errors"
local client_mod = require "truv.client"
local fake = require "spec.support.fake_transport"

local THIS_FILE = debug.getinfo(1, "S").short_src

local ORDER = '{"id":"o1","products":["income"],"refresh_order":null,"employers":[' ..
  '{"id":"e1","status":"completed","access_token":"tok-e1","created_at":"2027-01-10T00:00:00Z"}]}'
local REFRESHED = '{"id":"r1","products":["income"],"employers":[{"id":"e9","status":"pending"}]}'

local function client_with(replies, extra)
  local t = fake.clock()
  local transport = fake.new(replies)
  local logs = {}
  local opts = {
    client_id = "cid", secret = "sandbox-unit-secret-1234", base_url = "http://sandbox.test/v1/",
    transport = transport, clock = t.clock, sleep = t.sleep,
    logger = function(level, event) logs[#logs + 1] = { level = level, event = event } end,
  }
  for k, v in pairs(extra or {}) do opts[k] = v end
  return assert(truv.new(opts)), transport, t, logs
end

describe("an error", function()
  local function sample()
    return errors.new("network", "connect", "refused", { maybe_sent = false, op = "get_order" })
  end

  it("concatenates like its line, on either side", function()
    local e = sample()
    local line = tostring(e)
    assert.equal("truv: network in get_order (connect): refused (the request did not reach Truv)",
                 line)
    assert.equal("failed: " .. line, "failed: " .. e)
    assert.equal(line, e .. "")
    assert.equal(line .. "!", e .. "!")
    assert.equal("42 " .. line, 42 .. " " .. e)
    assert.equal(line .. line, e .. e)
    assert.equal(line, string.format("%s", e))
  end)

  it("holds its line as its only raw entry, as ngx.say and ngx.print require", function()
    local e = sample()
    -- ngx.say takes a table whose keys are all array indexes, and prints them
    local keys = {}
    for k in next, e do keys[#keys + 1] = k end
    assert.same({ 1 }, keys)
    assert.equal(tostring(e), e[1])
    assert.equal(1, #e)
  end)

  it("keeps its fields, and its line follows every change", function()
    local e = sample()
    assert.equal("network", e.kind)
    assert.equal("connect", e.code)
    assert.is_false(e.maybe_sent)
    e.op = "refresh_order"
    e.retry_at = 1800000000
    assert.equal("refresh_order", e.op)
    assert.equal("truv: network in refresh_order (connect): refused (the request did not reach " ..
                 "Truv); retry at 2027-01-15T08:00:00Z", e[1])
    assert.equal(e[1], tostring(e))
    e.retry_at = nil
    assert.is_nil(e.retry_at)
    assert.is_nil(e[1]:find("retry at", 1, true))
    assert.is_true(errors.is(e, "network"))
  end)

  it("walks its fields with pairs() and copies them with errors.fields", function()
    local e = sample()
    local seen = {}
    for k, v in pairs(e) do seen[k] = v end
    local want = { kind = "network", code = "connect", message = "refused", maybe_sent = false,
                   op = "get_order" }
    assert.same(want, seen)
    assert.same(want, errors.fields(e))
    assert.has_error(function() errors.fields({}) end)
  end)

  it("is the same kind of object when the C core makes it", function()
    local c = assert(truv.new{ client_id = "a", secret = "s", transport = {} })
    local req = assert(c:build("get_order", "x"))
    local doc, err = core.classify(req, 404, {}, '{"detail":"Not found."}', 1800000000)
    assert.is_nil(doc)
    assert.is_true(errors.is(err, "not_found"))
    assert.equal("failed: " .. tostring(err), "failed: " .. err)
    assert.equal(tostring(err), err[1])
    assert.equal(404, err.status)
  end)

  it("refuses to concatenate with what a string would refuse, at the caller", function()
    local e = sample()
    local ok, msg = pcall(function() return e .. {} end)
    assert.is_false(ok)
    assert.matches("attempt to concatenate a table value", msg)
    assert.truthy(msg:find(THIS_FILE, 1, true), msg)
  end)
end)

-- Every public method of the client, with a call that has a wrong argument
-- (nil: the method takes no argument that could be wrong).
local BAD_CALLS = {
  close = false, now = false, counters = false, describe = false, options = false,
  sleep = function(c) c:sleep(-1) end,
  emit = function(c) c:emit("loud", { event = "x" }) end,
  count = function(c) c:count(nil) end,
  backoff = function(c) c:backoff(0, {}) end,
  refresh_setting = function(c) c:refresh_setting(1) end,
  set_timeouts = function(c) c:set_timeouts(0) end,
  send = function(c) c:send("GET orders/") end,
  build = function(c) c:build("get_orders") end,
  call = function(c) c:call("get_order", 42) end,
  create_order = function(c) c:create_order("income") end,
  get_order = function(c) c:get_order(42) end,
  get_order_model = function(c) c:get_order_model({}) end,
  list_order_events = function(c) c:list_order_events("o1", "page=2") end,
  list_tasks = function(c) c:list_tasks("u1") end,
  get_task = function(c) c:get_task(nil) end,
  create_refresh_task = function(c) c:create_refresh_task() end,
  get_refresh_task = function(c) c:get_refresh_task(7) end,
  create_bridge_token = function(c) c:create_bridge_token("u1") end,
  refresh_order = function(c) c:refresh_order("o1", "income") end,
  wait_for_refresh = function(c) c:wait_for_refresh(12) end,
  reverify = function(c) c:reverify(42) end,
}

-- More wrong calls that go deeper: options of one call.
local BAD_OPTIONS = {
  function(c) c:get_order("o1", { timeout = 5 }) end,
  function(c) c:get_order("o1", { timeout_ms = 0 }) end,
  function(c) c:get_order("o1", "fast") end,
  function(c) c:create_bridge_token("u1", {}, { read_timeout_ms = -1 }) end,
  function(c) c:list_order_events("o1", nil, { connect_timeout_ms = "1" }) end,
  function(c) c:list_tasks({ user_id = "u1" }, { all = true, max_pages = 0 }) end,
  function(c) c:refresh_order("o1", { products = { "income" } }, { max_sends = 0 }) end,
  function(c) c:refresh_order("o1", { products = { "income" } }, { refuse_dead = "no" }) end,
  function(c) c:refresh_order("o1", { products = { "income" } }, { send_timeout_ms = 1e12 }) end,
  function(c) c:refresh_order("o1", { products = { "income" } }, { answer = "json" }) end,
  function(c) c:wait_for_refresh("r1", { interval_s = 0 }) end,
  function(c) c:wait_for_refresh("r1", { timeout_ms = false }) end,
  function(c) c:reverify({}, { contact = "a@b.c" }) end,
  function(c) c:reverify({}, { mode = "email" }) end,
  function(c) c:set_timeouts(1000, "2000") end,
  function(c) c:set_timeouts(nil, nil, 1e10) end,
  function() truv.new{ client_id = "a", secret = "s", transport = {}, read_timeout_ms = 0 } end,
  function() truv.new{ client_id = "a", secret = "s", transport = {}, on_request = true } end,
  function() truv.new{ client_id = "a", secret = "s", transport = {}, counters = {} } end,
  function() truv.new{ client_id = "a", secret = "s", transport = {}, no_proxy = { 1 } } end,
}

describe("a wrong argument", function()
  local function points_here(fn)
    local ok, err = pcall(fn, (client_with{}))
    assert.is_false(ok, "accepted")
    err = tostring(err)
    local line = debug.getinfo(fn, "S").linedefined
    assert.truthy(err:find(THIS_FILE .. ":" .. line .. ":", 1, true),
                  "the error does not point at line " .. line .. " of the caller: " .. err)
    return err
  end

  it("raises at the caller's line, for every public method", function()
    local public = {}
    for name, fn in pairs(client_mod.Client) do
      if type(fn) == "function" and not name:match("^_") then public[#public + 1] = name end
    end
    table.sort(public)
    for _, name in ipairs(public) do
      assert(BAD_CALLS[name] ~= nil, "no wrong call checked for client:" .. name)
      if BAD_CALLS[name] then
        local err = points_here(BAD_CALLS[name])
        assert.matches("bad argument #%d to '" .. name .. "'", err)
      end
    end
  end)

  it("and a wrong option too, naming it", function()
    for i, fn in ipairs(BAD_OPTIONS) do
      local ok = pcall(fn, (client_with{}))
      assert.is_false(ok, "wrong option #" .. i .. " accepted")
      local err = points_here(fn)
      assert.matches("bad %a+ '?[%w_.#]+'? to '[%w_.]+'", err)
    end
    local err = points_here(BAD_OPTIONS[1])
    assert.matches("did you mean 'timeout_ms'", err)
  end)
end)

describe("the client's hooks for the workflows built on it", function()
  it("pause its way, log through its logger, count in its counters, and say its options", function()
    local c, _, t, logs = client_with({}, { retry = { base_ms = 1000, cap_ms = 1000 } })
    local before = c:now()
    c:sleep(2.5)
    assert.equal(before + 2.5, c:now())                  -- the client's own sleep and clock
    c:emit("info", { event = "reconcile", round = 1 })
    assert.same({ level = "info", event = { event = "reconcile", round = 1 } }, logs[#logs])
    c:count("retries", 2)
    assert.equal(2, c:counters().retries)
    -- the server's hint, else full jitter under the retry settings' ceiling
    assert.equal(7, c:backoff(1, { retry_at = c:now() + 7 }))
    local b = c:backoff(3, {})
    assert.is_true(b >= 0 and b <= 1)
    local o = c:options()
    assert.equal("cid", o.client_id)
    assert.equal(t.sleep, o.sleep)
    o.client_id = "changed"                               -- a copy
    assert.equal("cid", c:options().client_id)
  end)

  it("say its refresh settings: its refresh option's and expiry_days, nil where not given",
     function()
    local c = client_with({}, { refresh = { not_within = 3600, refuse_dead = false },
                                expiry_days = 90 })
    assert.equal(3600, c:refresh_setting("not_within"))
    assert.is_false(c:refresh_setting("refuse_dead"))
    assert.equal(90, c:refresh_setting("expiry_days"))
    assert.is_nil(c:refresh_setting("oauth_providers"))
    assert.is_nil(client_with{}:refresh_setting("not_within"))
  end)
end)

describe("a closed client", function()
  local CALLS = {
    create_order = { { first_name = "A", last_name = "B", products = { "income" } } },
    get_order = { "o1" }, get_order_model = { "o1" }, list_order_events = { "o1" },
    list_tasks = { { user_id = "u1" } }, get_task = { "t1" },
    create_refresh_task = { { access_token = "tok", product_type = "income" } },
    get_refresh_task = { "t1" }, create_bridge_token = { "u1", { product_type = "income" } },
    refresh_order = { "o1", { products = { "income" } } }, wait_for_refresh = { "r1" },
    reverify = { "o1" }, call = { "get_order", "o1" },
  }

  it("answers every call with nil, err (invalid, closed), sending nothing", function()
    local c, transport = client_with{}
    assert.is_true(c:close())
    assert.is_true(c:close())            -- twice is fine
    for name, args in pairs(CALLS) do
      local ok, res, err = pcall(c[name], c, table.unpack(args))
      assert.is_true(ok, name .. " raised: " .. tostring(res))
      assert.is_nil(res, name)
      assert.is_true(errors.is(err, "invalid"), name)
      assert.equal("closed", err.code, name)
    end
    local ok, res, err = pcall(c.send, c, assert(c:build("get_order", "o1")))
    assert.is_true(ok, tostring(res))
    assert.equal("closed", err.code)
    assert.equal(0, #transport.sent)
    -- what sends nothing still answers
    assert.is_number(c:now())
    assert.equal(0, c:counters().requests)
    assert.is_true(c:set_timeouts(1000, 1000, 1000))
  end)
end)

describe("timeouts", function()
  it("go with every request, in milliseconds, when the caller set them", function()
    local c, transport = client_with{ { status = 200, body = ORDER } }
    assert(c:get_order("o1"))
    assert.same({}, transport.sent[1].timeouts)     -- the transport's own (10 s, 30 s)
    c, transport = client_with({ { status = 200, body = ORDER } },
                               { timeout_ms = 20000, connect_timeout_ms = 4000 })
    assert(c:get_order("o1"))
    assert.same({ connect_ms = 4000, total_ms = 20000 }, transport.sent[1].timeouts)
  end)

  it("follow set_timeouts(connect, send, read); nil keeps one", function()
    local c, transport = client_with({ { status = 200, body = ORDER }, { status = 200, body = ORDER } },
                                     { timeout_ms = 20000, read_timeout_ms = 9000 })
    assert(c:get_order("o1"))
    assert.same({ read_ms = 9000, total_ms = 20000 }, transport.sent[1].timeouts)
    assert.is_true(c:set_timeouts(1000, 2000, nil))
    assert(c:get_order("o1"))
    assert.same({ connect_ms = 1000, send_ms = 2000, read_ms = 9000, total_ms = 20000 },
                transport.sent[2].timeouts)
  end)

  it("of one call apply to that call alone", function()
    local c, transport = client_with{ { status = 200, body = ORDER }, { status = 200, body = ORDER } }
    assert(c:get_order("o1", { timeout_ms = 500, read_timeout_ms = 100 }))
    assert(c:get_order("o1"))
    assert.same({ read_ms = 100, total_ms = 500 }, transport.sent[1].timeouts)
    assert.same({}, transport.sent[2].timeouts)
  end)

  it("of one call reach every request the call makes", function()
    local c, transport = client_with{ { status = 200, body = ORDER },
                                      { status = 201, body = REFRESHED } }
    local fresh = assert(c:refresh_order("o1", { products = { "income" } },
                                         { timeout_ms = 700, connect_timeout_ms = 300 }))
    assert.equal("r1", fresh.id)
    assert.same({ "GET", "POST" }, { transport.sent[1].method, transport.sent[2].method })
    for _, s in ipairs(transport.sent) do
      assert.same({ connect_ms = 300, total_ms = 700 }, s.timeouts)
    end
  end)

  it("of one call never reach another coroutine sharing the client", function()
    local c, transport = client_with{ { status = 200, body = ORDER }, { status = 200, body = ORDER } }
    transport.yield = true
    local a = coroutine.create(function() return c:get_order("o1", { timeout_ms = 111 }) end)
    local b = coroutine.create(function() return c:get_order("o1") end)
    assert(coroutine.resume(a))           -- a waits inside its exchange
    assert(coroutine.resume(b))           -- b starts its own meanwhile
    local _, doc_a = assert(coroutine.resume(a))
    local _, doc_b = assert(coroutine.resume(b))
    assert.equal("o1", doc_a.id)
    assert.equal("o1", doc_b.id)
    assert.equal(111, transport.sent[1].timeouts.total_ms)
    assert.is_nil(transport.sent[2].timeouts.total_ms)
  end)

  it("of one call end with it, even when it raises", function()
    local c, transport = client_with{ { status = 200, body = ORDER } }
    c._transport = setmetatable({}, { __index = function() error("the transport broke") end })
    assert.has_error(function() c:get_order("o1", { timeout_ms = 5 }) end)
    c._transport = transport
    assert(c:get_order("o1"))
    assert.is_nil(transport.sent[1].timeouts.total_ms)
  end)
end)

describe("telemetry", function()
  it("calls on_request before and on_response after each exchange, with no header or body",
     function()
    local seen = {}
    local c = client_with({ { status = 503, body = "{}" }, { status = 200, body = ORDER } }, {
      on_request = function(info) seen[#seen + 1] = { "request", info } end,
      on_response = function(info) seen[#seen + 1] = { "response", info } end,
    })
    assert(c:get_order("o1"))
    local base = { op = "get_order", method = "GET", path = "orders/o1/" }
    local function with(t)
      local o = {}
      for k, v in pairs(base) do o[k] = v end
      for k, v in pairs(t) do o[k] = v end
      return o
    end
    assert.same({
      { "request", with{ attempt = 1 } },
      { "response", with{ attempt = 1, status = 503, elapsed_ms = 0, kind = "server",
                          code = "server_error" } },
      { "request", with{ attempt = 2 } },
      { "response", with{ attempt = 2, status = 200, elapsed_ms = 0 } },
    }, seen)
  end)

  it("never lets a failing hook lose an answer, and logs it", function()
    local c, _, _, logs = client_with({ { status = 200, body = ORDER },
                                        { status = 201, body = REFRESHED } }, {
      on_request = function() error("metrics backend down") end,
      on_response = function() error("metrics backend down") end,
    })
    local fresh = assert(c:refresh_order("o1", { products = { "income" } }))
    assert.equal("r1", fresh.id)
    local failed = 0
    for _, l in ipairs(logs) do
      if l.event.event == "hook_failed" then
        failed = failed + 1
        assert.equal("warn", l.level)
        assert.matches("metrics backend down", l.event.error)
      end
    end
    assert.equal(4, failed)
  end)

  it("never lets a failing logger lose an answer either", function()
    local c = client_with({ { status = 200, body = ORDER }, { status = 201, body = REFRESHED } }, {
      logger = function() error("the log disk is full") end,
    })
    local fresh = assert(c:refresh_order("o1", { products = { "income" } }))
    assert.equal("r1", fresh.id)
  end)

  it("counts requests, billed requests, retries, 429s, failures and routes", function()
    local c = client_with({
      { status = 503, body = "{}" }, { status = 200, body = ORDER },          -- a retried GET
      { status = 429, body = "{}", headers = { ["Retry-After"] = "1" } },   -- a 429 ...
      { status = 200, body = ORDER },                                       -- ... then the order
      { status = 201, body = REFRESHED },                                   -- a billed refresh
    })
    assert(c:get_order("o1"))
    assert(c:get_order("o1"))
    assert(c:refresh_order("o1", { products = { "income" } }, { order = truv.decode(ORDER) }))
    -- the quota refuses without sending: a route, no request
    for _ = 1, 2 do
      assert(c.quota:reserve({ core.quota_key("tok-e1") }, c:now()))
    end
    local res, err = c:refresh_order("o1", { products = { "income" } },
                                     { order = truv.decode(ORDER) })
    assert.is_nil(res)
    assert.equal("quota", err.kind)
    assert.same({ requests = 5, billed = 1, retries = 2, throttled = 1, errors = 2,
                  routes = { defer = 1 }, webhooks = {} }, c:counters())
  end)

  it("shares a counters object between clients, in Prometheus' text format", function()
    local counters = truv.counters.memory()
    local a = client_with({ { status = 200, body = ORDER } }, { counters = counters })
    local b = client_with({ { status = 404, body = '{"detail":"Not found."}' } },
                          { counters = counters })
    assert(a:get_order("o1"))
    assert.is_nil(b:get_order("o2"))
    assert.same(a:counters(), b:counters())
    counters:incr("route:done", 3)
    counters:incr("webhook:handled")
    assert.equal(table.concat({
      "# HELP truv_requests_total Exchanges with Truv (every attempt).",
      "# TYPE truv_requests_total counter",
      "truv_requests_total 2",
      "# HELP truv_billed_requests_total Billed requests sent to Truv (refreshes).",
      "# TYPE truv_billed_requests_total counter",
      "truv_billed_requests_total 0",
      "# HELP truv_retries_total Requests sent again.",
      "# TYPE truv_retries_total counter",
      "truv_retries_total 0",
      "# HELP truv_throttled_total Answers 429 Too Many Requests.",
      "# TYPE truv_throttled_total counter",
      "truv_throttled_total 0",
      "# HELP truv_errors_total Exchanges with Truv that failed.",
      "# TYPE truv_errors_total counter",
      "truv_errors_total 1",
      "# HELP truv_routes_total Outcomes routed, by route.",
      "# TYPE truv_routes_total counter",
      'truv_routes_total{route="done"} 3',
      "# HELP truv_webhooks_total Webhooks received, by result.",
      "# TYPE truv_webhooks_total counter",
      'truv_webhooks_total{result="handled"} 1',
    }, "\n") .. "\n", truv.counters.prometheus(counters:snapshot()))
  end)
end)

describe("truv.log", function()
  it("writes one line per event, fields in a stable order, texts quoted when needed", function()
    assert.equal('truv: warn error op=get_order path=orders/o1/ status=503 kind=server ' ..
                 'attempt=2 elapsed_ms=12 error="truv: server (HTTP 503)"',
                 truv.log.format("warn", { event = "error", op = "get_order", path = "orders/o1/",
                                           status = 503, kind = "server", attempt = 2,
                                           elapsed_ms = 12, error = "truv: server (HTTP 503)" }))
    assert.equal('truv: info retry attempt=1 wait_s=0.125 x="a\\nb"',
                 truv.log.format("info", { event = "retry", attempt = 1, wait_s = 0.125,
                                           x = "a\nb" }))
  end)

  it("keeps the levels asked for", function()
    local lines = {}
    local c = client_with({ { status = 500, body = "{}" }, { status = 200, body = ORDER } }, {
      logger = truv.log.lines(function(l) lines[#lines + 1] = l end, { level = "info" }),
      quota = "memory",
    })
    assert.matches("^truv: info client ", lines[1])    -- what the client works with
    lines = {}
    assert(c:get_order("o1"))
    assert.equal(2, #lines)        -- the error (warn), the retry (info); no response (debug)
    assert.matches("^truv: warn error op=get_order path=orders/o1/ status=500 kind=server", lines[1])
    assert.matches("^truv: info retry op=get_order path=orders/o1/ kind=server attempt=1", lines[2])
    assert.has_error(function() truv.log.lines(print, { level = "loud" }) end)
    assert.has_error(function() truv.log.ngx() end, "truv.log.ngx: not inside nginx (no ngx.log)")
  end)
end)
