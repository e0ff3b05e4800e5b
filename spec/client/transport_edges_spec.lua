-- The libcurl transport's edges: read and per-call timeouts that end a
-- stalled exchange long before the whole-exchange default, and an HTTP
-- proxy (absolute form for http://, a CONNECT tunnel for https://,
-- no_proxy, its credentials never in an error).
local socket = require "socket"
local truv = require "truv"
local sandbox = require "spec.support.sandbox"
local connect_proxy = require "spec.support.connect_proxy"

-- A port that accepts connections (the kernel's backlog) and never answers.
local function silent_server()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  return s, tonumber(port)
end

local function elapsed(fn)
  local t0 = socket.gettime()
  local a, b = fn()
  return socket.gettime() - t0, a, b
end

describe("libcurl timeouts", function()
  local listener, port
  setup(function() listener, port = silent_server() end)
  teardown(function() listener:close() end)

  local function client(extra)
    local opts = { client_id = "cid", secret = "s", base_url = "http://127.0.0.1:" .. port .. "/v1/",
                   transport = "curl", retry = { attempts = 1 } }
    for k, v in pairs(extra or {}) do opts[k] = v end
    return assert(truv.new(opts))
  end

  -- The whole exchange may last 30 s (timeout_ms's default); each of these
  -- ends far sooner, by the timeout under test (bounds are loose: this is
  -- not a measure of speed, only of which timeout fired).
  it("end a stalled answer after read_timeout_ms (libcurl's stall window, whole seconds)",
     function()
    local c = client{ read_timeout_ms = 1000 }
    local took, doc, err = elapsed(function() return c:get_order("o1") end)
    assert.is_nil(doc)
    assert.equal("network", err.kind)
    assert.equal("timeout", err.code)
    assert.is_true(err.maybe_sent)
    assert.is_true(took >= 0.9 and took < 10, "took " .. took)
    c:close()
  end)

  it("follow set_timeouts(connect, send, read)", function()
    local c = client()
    c:set_timeouts(1000, 1000, 1000)
    local took, _, err = elapsed(function() return c:get_order("o1") end)
    assert.equal("timeout", err.code)
    assert.is_true(took < 10, "took " .. took)
    c:close()
  end)

  it("of one call bound that call alone", function()
    local c = client()
    local took, _, err = elapsed(function() return c:get_order("o1", { timeout_ms = 300 }) end)
    assert.equal("timeout", err.code)
    assert.is_true(took >= 0.25 and took < 5, "took " .. took)
    c:close()
  end)
end)

describe("libcurl through an HTTP proxy", function()
  local sb, proxy, case

  lazy_setup(function()
    sb = sandbox.start{ args = { "--seed-cases", "2", "--mix", "active=1", "--rate-limit", "0" } }
    case = sb:cases()[1]
  end)
  lazy_teardown(function()
    if proxy then proxy:stop() end
    if sb then sb:stop() end
  end)

  local function client(extra)
    local opts = { client_id = sb.client_id, secret = sb.secret, base_url = sb.base_url,
                   transport = "curl", retry = { attempts = 1 } }
    for k, v in pairs(extra or {}) do opts[k] = v end
    return assert(truv.new(opts))
  end

  it("sends http:// requests in absolute form, with the proxy's credentials", function()
    proxy = connect_proxy.start{ auth = "agency:pr0xy-pass" }
    local url = proxy.url:gsub("^http://", "http://agency:pr0xy-pass@")
    local c = client{ proxy = url }
    local order = assert(c:get_order(case.order_id))
    assert.equal(case.order_id, order.id)
    assert.same({ { method = "GET", auth = "yes",
                    target = sb.base_url .. "orders/" .. case.order_id .. "/" } },
                proxy:requests())
    c:close()
  end)

  it("leaves the hosts of no_proxy alone", function()
    local before = #proxy:requests()
    local c = client{ proxy = proxy.url, no_proxy = { "localhost", "127.0.0.1" } }
    assert(c:get_order(case.order_id))
    assert.equal(before, #proxy:requests())
    c:close()
  end)

  it("reports a refused tunnel as never sent, without the proxy's password", function()
    local p = connect_proxy.start{ auth = "agency:pr0xy-pass", refuse = { [443] = true } }
    local url = p.url:gsub("^http://", "http://agency:pr0xy-pass@")
    local c = client{ proxy = url, base_url = "https://127.0.0.1:443/v1/" }
    local doc, err = c:get_order(case.order_id)
    local seen = p:requests()
    p:stop()
    assert.is_nil(doc)
    assert.equal("network", err.kind)
    assert.equal("connect", err.code)
    assert.is_false(err.maybe_sent)
    assert.matches("HTTP 403", tostring(err))
    assert.is_nil(tostring(err):find("pr0xy-pass", 1, true))
    assert.same({ { method = "CONNECT", target = "127.0.0.1:443", auth = "yes" } }, seen)
    c:close()
  end)
end)
