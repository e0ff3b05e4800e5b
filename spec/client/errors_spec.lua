-- Every error kind, produced for real (the sandbox, a scripted server, a
-- closed port), typed as the client promises, and never carrying a secret,
-- an access token or an SSN: not in the error, not in tostring, not in a log.
local world = require "spec.support.world"
local rawserver = require "spec.support.rawserver"
local truv = require "truv"

local SSN = "991-91-9991"

-- Every string reachable from v (tables walked, documents converted).
local function strings(v, out, seen)
  out, seen = out or {}, seen or {}
  if type(v) == "string" then
    out[#out + 1] = v
  elseif type(v) == "number" or type(v) == "boolean" then
    out[#out + 1] = tostring(v)
  elseif type(v) == "table" and not seen[v] then
    seen[v] = true
    for k, x in pairs(v) do
      strings(k, out, seen)
      strings(x, out, seen)
    end
  end
  return out
end

local function assert_clean(w, err, secrets)
  local texts = strings(err)
  texts[#texts + 1] = tostring(err)
  for _, l in ipairs(w.logs) do strings(l, texts) end
  for _, t in ipairs(texts) do
    for _, s in ipairs(secrets) do
      assert(not t:find(s, 1, true), "a secret leaked into: " .. t)
    end
  end
end

describe("errors from the sandbox", function()
  local w, token, case
  lazy_setup(function()
    w = world.new{ args = { "--seed-cases", "3", "--mix", "active=1" } }
    case = w.cases[1]
    token = w:connections(case.order_id)[1].access_token
  end)
  lazy_teardown(function() if w then w:stop() end end)
  before_each(function()
    w.logs = {}
    w.sb:faults{ reset = true }
  end)

  local function secrets() return { w.sb.secret, token, SSN } end

  it("invalid: a rule broken locally sends nothing", function()
    w.sb:reset_stats()
    local res, err = w.client:create_order{ products = { "income" }, first_name = "A",
                                            last_name = "B", ssn = "12", email = "x" }
    assert.is_nil(res)
    assert.equal("invalid", err.kind)
    assert.is_nil(err.status)
    assert.equal(0, w.sb:stats().requests.total)
    assert_clean(w, err, secrets())
  end)

  it("invalid: Truv's 400 with invalid-params", function()
    local res, err = w.client:create_refresh_task{ access_token = "tok-not-a-connection",
                                                   product_type = "income" }
    assert.is_nil(res)
    assert.equal("invalid", err.kind)
    assert.equal(400, err.status)
    assert.equal("incorrect_parameters", err.code)
    assert.equal("access_token", err.fields[1].field)
    assert.is_string(err.request_id)
    assert_clean(w, err, { w.sb.secret, "tok-not-a-connection" })
  end)

  it("auth: a wrong secret", function()
    local bad = assert(truv.new{ client_id = w.sb.client_id, secret = "sandbox-wrong-secret",
                                 base_url = w.sb.base_url, logger = function(l, e)
                                   w.logs[#w.logs + 1] = { l, e } end })
    local res, err = bad:get_order(case.order_id)
    assert.is_nil(res)
    assert.equal("auth", err.kind)
    assert.equal(401, err.status)
    assert.equal("authentication_failed", err.code)
    assert_clean(w, err, { "sandbox-wrong-secret", w.sb.secret })
  end)

  it("not_found: an unknown order", function()
    local res, err = w.client:get_order("0000aaaa0000aaaa0000aaaa0000aaaa")
    assert.is_nil(res)
    assert.equal("not_found", err.kind)
    assert.equal("Not Found.", err.message)
    assert_clean(w, err, secrets())
  end)

  it("server: a 5xx, after the safe call's retries", function()
    w.sb:faults{ fault_5xx = 1 }
    local res, err = w.client:get_order(case.order_id)
    assert.is_nil(res)
    assert.equal("server", err.kind)
    assert.is_true(err.status >= 500)
    assert.equal(4, #w.logs - 3)   -- 4 attempts logged as errors, 3 retries logged
    assert_clean(w, err, secrets())
  end)

  it("server: a billed refresh task is not re-sent after a 5xx", function()
    w.sb:faults{ fault_5xx = 1 }
    w.sb:reset_stats()
    local res, err = w.client:create_refresh_task{ access_token = token, product_type = "income" }
    assert.is_nil(res)
    assert.equal("server", err.kind)
    assert.equal(1, w.sb:stats().requests.total)
    assert_clean(w, err, secrets())
  end)

  it("network: a reset after the request was sent may have reached Truv", function()
    w.sb:faults{ reset_after = 1, match = "POST /v1/refresh/tasks/" }
    local res, err = w.client:create_refresh_task{ access_token = token, product_type = "income" }
    assert.is_nil(res)
    assert.equal("network", err.kind)
    assert.is_true(err.maybe_sent)
    assert.equal("reset", err.code)
    assert_clean(w, err, secrets())
  end)

  it("network: a truncated body", function()
    w.sb:faults{ truncate = 1 }
    local c = assert(truv.new{ client_id = w.sb.client_id, secret = w.sb.secret,
                               base_url = w.sb.base_url, retry = { attempts = 1 } })
    local res, err = c:get_order(case.order_id)
    assert.is_nil(res)
    assert.equal("network", err.kind)
    assert.equal("truncated_body", err.code)
    assert.is_true(err.maybe_sent)
  end)

  it("network: a stalled answer times out", function()
    w.sb:faults{ stall = 1, stall_ms = 3000 }
    local c = assert(truv.new{ client_id = w.sb.client_id, secret = w.sb.secret,
                               base_url = w.sb.base_url, timeout_ms = 300,
                               retry = { attempts = 1 } })
    local res, err = c:get_order(case.order_id)
    assert.is_nil(res)
    assert.equal("network", err.kind)
    assert.equal("timeout", err.code)
    assert.is_true(err.maybe_sent)
  end)

  it("refresh_limit: Truv refuses a refresh task past its limit", function()
    local t = w:connections(w.cases[2].order_id)[1].access_token
    -- no local quota here, so that Truv's own refusal is what comes back
    local c = assert(truv.new{ client_id = w.sb.client_id, secret = w.sb.secret,
                               base_url = w.sb.base_url, quota = false,
                               logger = function(l, e) w.logs[#w.logs + 1] = { l, e } end })
    local res, err
    for _ = 1, 5 do
      res, err = c:create_refresh_task{ access_token = t, product_type = "income" }
      if not res then break end
    end
    assert.is_nil(res)
    assert.equal("refresh_limit", err.kind)
    assert.equal("Refresh limit for the access_token exceeded", err.message)
    assert_clean(w, err, { w.sb.secret, t })
  end)
end)

describe("errors without a server", function()
  it("network: a connection refused provably did not reach Truv", function()
    local sock = require "socket"
    local s = assert(sock.bind("127.0.0.1", 0))
    local _, port = s:getsockname()
    s:close()
    local c = assert(truv.new{ client_id = "c", secret = "sandbox-s3cret-value",
                               base_url = "http://127.0.0.1:" .. port .. "/v1/",
                               retry = { attempts = 1 } })
    local res, err = c:create_refresh_task{ access_token = "tok-abcdef", product_type = "income" }
    assert.is_nil(res)
    assert.equal("network", err.kind)
    assert.equal("connect", err.code)
    assert.is_false(err.maybe_sent)
    assert.is_nil(tostring(err):find("sandbox-s3cret-value", 1, true))
  end)
end)

-- A raw HTTP/1.1 answer with a correct Content-Length.
local function answer(status_line, body, headers)
  return "HTTP/1.1 " .. status_line .. "\r\n" .. (headers or "") ..
         "Content-Length: " .. #body .. "\r\n\r\n" .. body
end

describe("errors from a scripted server", function()
  local function client_for(srv)
    return assert(truv.new{ client_id = "c", secret = "sandbox-s3cret-value",
                            base_url = srv.base_url, retry = { attempts = 1 } })
  end

  it("protocol: a 200 whose JSON is broken", function()
    local srv = rawserver.start{ answer("200 OK", '{"id": "o1", "employers": [',
                                        "Content-Type: application/json\r\n") }
    local res, err = client_for(srv):get_order("o1")
    srv:stop()
    assert.is_nil(res)
    assert.equal("protocol", err.kind)
    assert.equal("malformed_json", err.code)
    assert.equal(200, err.status)
  end)

  it("protocol: a 200 without the answer's shape", function()
    local srv = rawserver.start{ answer("200 OK", "{}") }
    local res, err = client_for(srv):create_refresh_task{ access_token = "tok-x1",
                                                          product_type = "income" }
    srv:stop()
    assert.is_nil(res)
    assert.equal("protocol", err.kind)
    assert.equal("unexpected_shape", err.code)
  end)

  it("api: 405, 410 and 415", function()
    local srv = rawserver.start{
      answer("405 Method Not Allowed", '{"detail":"Method \\"GET\\" not allowed."}'),
      answer("410 Gone", '{"error":{"code":"expired_token","message":"Token expired"}}'),
      answer("415 Unsupported Media Type", ""),
    }
    local c = client_for(srv)
    local _, e1 = c:get_order("o1")
    local _, e2 = c:create_bridge_token("u1", { product_type = "income" })
    local _, e3 = c:get_order("o1")
    srv:stop()
    assert.same({ "api", 405 }, { e1.kind, e1.status })
    assert.same({ "api", 410, "expired_token" }, { e2.kind, e2.status, e2.code })
    assert.same({ "api", 415 }, { e3.kind, e3.status })
  end)

  it("throttled: a 429 with Retry-After as a date", function()
    local srv = rawserver.start{ answer("429 Too Many Requests", "{}",
                                        "Retry-After: Fri, 15 Jan 2027 08:00:05 GMT\r\n") }
    local c = assert(truv.new{ client_id = "c", secret = "s", base_url = srv.base_url,
                               retry = { attempts = 1 }, clock = function() return 1800000000 end,
                               sleep = function() end })
    local _, err = c:get_order("o1")
    srv:stop()
    assert.equal("throttled", err.kind)
    assert.equal(1800000005, err.retry_at)
  end)
end)
