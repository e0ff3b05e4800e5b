-- core.listener, the embedded webhook listener, from Lua: posts over real
-- sockets, the queue drained as tables with lower-case header names, the
-- refusals counted, closing and misuse; and the same binding under LuaJIT.
local core = require "truv.core"
local sandbox = require "spec.support.sandbox"
local files = require "spec.support.files"
local luajit = require "spec.support.luajit"

local SECRET = "sandbox-listener-secret"
local BODY = '{"webhook_id":"5f1c","event_type":"task-status-updated","status":"done"}'

local function post(l, body, headers, method, path)
  local h = { ["Content-Type"] = "application/json", ["User-Agent"] = "Truv-Webhook-Service/2.0" }
  for k, v in pairs(headers or {}) do h[k] = v end
  return sandbox.http("127.0.0.1", l.port, method or "POST", path or "/truv/webhooks", h, body, 5)
end

local function signed(body, secret)
  return { ["X-WEBHOOK-SIGN"] = "v1=" .. sandbox.hmac_sha256_hex(secret or SECRET, body) }
end

describe("core.listener", function()
  it("binds a free port on 127.0.0.1 and says where", function()
    local l = assert(core.listener{ secrets = SECRET })
    assert.is_true(l.port > 0)
    assert.equal("127.0.0.1", l.host)
    assert.equal("/truv/webhooks", l.path)
    assert.equal("http://127.0.0.1:" .. l.port .. "/truv/webhooks", l:url())
    assert.matches("^truv%.listener %(127%.0%.0%.1 port %d+%)$", tostring(l))
    l:close()
  end)

  it("queues a signed delivery and hands it over with lower-case header names", function()
    local l = assert(core.listener{ secrets = { "sandbox-old", SECRET }, path = "/hooks" })
    assert.equal(200, post(l, BODY, signed(BODY), "POST", "/hooks"))
    local got = l:drain()
    assert.equal(1, #got)
    assert.equal(BODY, got[1].body)
    assert.same({ ["x-webhook-sign"] = signed(BODY)["X-WEBHOOK-SIGN"],
                  ["content-type"] = "application/json",
                  ["user-agent"] = "Truv-Webhook-Service/2.0" }, got[1].headers)
    assert.is_true(math.abs(got[1].received_at - core.now()) < 5)
    assert.same({}, l:drain())
    -- what the receiver needs: verify takes the headers table as it is
    assert.is_true(core.webhook_verify(got[1].body, got[1].headers, SECRET))
    l:close()
  end)

  it("drains oldest first, at most max at a time", function()
    local l = assert(core.listener{ secrets = SECRET })
    for i = 1, 4 do
      local b = '{"n":' .. i .. '}'
      assert.equal(200, post(l, b, signed(b)))
    end
    local first = l:drain(3)
    assert.equal(3, #first)
    assert.equal('{"n":1}', first[1].body)
    assert.equal('{"n":3}', first[3].body)
    assert.equal('{"n":4}', l:drain()[1].body)
    l:close()
  end)

  it("refuses, without queueing, bad signatures, other paths and methods, big bodies and "
     .. "a full queue", function()
    local l = assert(core.listener{ secrets = SECRET, max_queue = 1, max_body = 100 })
    assert.equal(401, post(l, BODY, signed(BODY, "sandbox-other")))
    assert.equal(401, post(l, BODY .. " ", signed(BODY)))
    assert.equal(401, post(l, BODY))
    assert.equal(404, post(l, BODY, signed(BODY), "POST", "/"))
    local status, _, headers = post(l, "", nil, "GET")
    assert.equal(405, status)
    assert.equal("POST", headers.allow)
    local big = string.rep("x", 101)
    assert.equal(413, post(l, big, signed(big)))
    assert.equal(200, post(l, BODY, signed(BODY)))
    status, _, headers = post(l, BODY, signed(BODY))
    assert.equal(503, status)
    assert.equal("1", headers["retry-after"])
    assert.same({ accepted = 1, unauthorized = 3, not_found = 1, bad_method = 1, too_large = 1,
                  full = 1, queued = 1 }, l:stats())
    assert.equal(1, #l:drain())
    assert.equal(200, post(l, BODY, signed(BODY)))
    l:close()
  end)

  it("returns nil, err when it cannot listen, and raises on misuse", function()
    local l = assert(core.listener{ secrets = SECRET })
    local other, err = core.listener{ secrets = SECRET, port = l.port }
    assert.is_nil(other)
    assert.equal("network", err.kind)
    assert.equal("bind", err.code)
    other, err = core.listener{ secrets = SECRET, host = "localhost" }
    assert.is_nil(other)
    assert.equal("invalid", err.kind)
    other, err = core.listener{ secrets = { "" } }
    assert.is_nil(other)
    assert.equal("no_secret", err.code)
    assert.has_error(function() core.listener{} end)
    assert.has_error(function() core.listener{ secrets = SECRET, port = "80" } end)
    assert.has_error(function() core.listener{ secrets = SECRET, port = 1.5 } end)
    assert.has_error(function() core.listener{ secrets = SECRET, max_queue = -1 } end)
    assert.has_error(function() core.listener{ secrets = { 1 } } end)
    assert.has_error(function() core.listener("secret") end)
    l:close()
  end)

  it("stops on close, on collection and at the end of a to-be-closed scope", function()
    local l = assert(core.listener{ secrets = SECRET })
    local port = l.port
    l:close()
    l:close()
    assert.equal("truv.listener (closed)", tostring(l))
    assert.is_nil(l.port)
    assert.has_error(function() l:drain() end, "truv: this webhook listener is closed")
    assert.is_nil(sandbox.http("127.0.0.1", port, "POST", "/truv/webhooks", {}, BODY, 2))
    -- a forgotten listener with deliveries queued
    local gone = assert(core.listener{ secrets = SECRET })
    assert.equal(200, post(gone, BODY, signed(BODY)))
    gone = nil   -- luacheck: ignore
    collectgarbage()
    collectgarbage()
    local scoped = assert(load([[
      local core, secret = ...
      local l <close> = assert(core.listener{ secrets = secret })
      return l
    ]]))(core, SECRET)
    assert.equal("truv.listener (closed)", tostring(scoped))
  end)

  it("works the same under LuaJIT", function()
    local build = luajit.build{ "curl" }
    local script = [[
      local core = require "truv.core"
      local l = assert(core.listener{ secrets = "s3cret" })
      local body = '{"webhook_id":"1"}'
      local sign = core.webhook_sign(body, "s3cret")
      -- curl is the client here, not under test: no sanitizer runtime preloaded into it
      local p = io.popen("env -u LD_PRELOAD curl -s -m 10 -o /dev/null -w '%{http_code}' "
                         .. "-H 'X-WEBHOOK-SIGN: " .. sign
                         .. "' --data-binary '" .. body .. "' " .. l:url())
      local code = p:read("*a")
      p:close()
      assert(code == "200", code)
      local got = l:drain()
      assert(#got == 1 and got[1].body == body and got[1].headers["x-webhook-sign"] == sign)
      assert(l:stats().accepted == 1)
      l:close()
      assert(tostring(l) == "truv.listener (closed)")
      print("ok")
    ]]
    local path = os.tmpname()
    files.write(path, script)
    local out = luajit.run(build, path)
    os.remove(path)
    assert.equal("ok\n", out)
  end)
end)
