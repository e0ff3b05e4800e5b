-- The truv-sandbox process: flags, start-up report, failures, shutdown.
local sandbox = require "spec.support.sandbox"
local socket = require "socket"

local FLAGS = {
  "host", "port", "port-file", "threads", "client-id", "secret", "start-time", "realtime", "time-scale",
  "task-duration", "expiry-days", "provider-down-s", "rate-limit", "refresh-limit", "refresh-limit-status",
  "seed-cases", "mix", "rng-seed", "cases-out", "latency-ms", "latency-jitter-ms", "fault-5xx",
  "fault-reset-before", "fault-reset-after", "fault-truncate", "fault-stall", "stall-ms", "fault-match",
  "webhook-url", "webhook-retries", "webhook-backoff-ms", "webhook-duplicates", "quiet", "verbose", "strict",
  "parent-pid", "help", "version",
}

-- runs the binary to completion (it must exit by itself); output and exit code
local function run(args)
  local p = io.popen("timeout 10 '" .. sandbox.bin() .. "' " .. args .. " 2>&1; echo \"exit=$?\"")
  local out = p:read("a")
  p:close()
  local code = tonumber(out:match("exit=(%d+)%s*$"))
  return out:gsub("exit=%d+%s*$", ""), code
end

describe("truv-sandbox command line", function()
  it("--help documents every flag and exits 0", function()
    local out, code = run("--help")
    assert.are.equal(0, code)
    for _, f in ipairs(FLAGS) do
      assert.is_truthy(out:find("%-%-" .. f:gsub("%-", "%%-") .. "[%s=]"), "--" .. f
        .. " missing from --help")
    end
    assert.is_truthy(out:find("active=70,expired=10,credentials=5,mfa=5,provider_down=4,no_data=3," ..
                              "locked=2,unsupported=1", 1, true))
  end)

  it("--version prints the version", function()
    local out, code = run("--version")
    assert.are.equal(0, code)
    assert.matches("^truv%-sandbox %S+", out)
  end)

  it("refuses a secret that is not a sandbox secret (exit 2)", function()
    local out, code = run("--secret prod-abc --port 0")
    assert.are.equal(2, code)
    assert.matches("sandbox%-", out)
  end)

  it("refuses bad values and unknown flags (exit 2)", function()
    for _, args in ipairs({ "--port 70000", "--threads 0", "--fault-5xx 2", "--refresh-limit-status 418",
                            "--mix happy=1", "--mix active=x", "--time-scale abc", "--bogus",
                            "--webhook-url ftp://x", "extra-argument" }) do
      local out, code = run(args)
      assert.are.equal(2, code, args .. ": " .. out)
      assert.matches("truv%-sandbox:", out, nil, false)
    end
  end)

  it("prints one 'listening' line and writes the port file", function()
    local sb = sandbox.start{}
    local out = sb:stdout()
    assert.are.equal("truv-sandbox listening on http://127.0.0.1:" .. sb.port .. "\n", out)
    assert.are.equal("", sb:stderr())
    assert.are.equal(0, sb:stop())
  end)

  it("--verbose logs one line per request on stderr; --quiet silences it", function()
    local sb = sandbox.start{ args = { "--verbose" } }
    sb:request("GET", "orders/" .. string.rep("a", 32) .. "/")
    sb:now()
    local _, err = sb:stop()
    assert.matches("truv%-sandbox: GET /v1/orders/" .. string.rep("a", 32) .. "/ 404 [%d.]+ms\n", err)
    assert.matches("truv%-sandbox: GET /_sandbox/clock 200 [%d.]+ms\n", err)
    sb = sandbox.start{ args = { "--verbose", "--quiet" } }
    sb:request("GET", "orders/x/")
    sb:shutdown()
  end)

  it("fails loudly with exit 1 when it cannot bind", function()
    local sb = sandbox.start{}
    finally(function() sb:shutdown() end)
    local out, code = run("--port " .. sb.port)
    assert.are.equal(1, code)
    assert.matches("cannot bind 127%.0%.0%.1:" .. sb.port .. ": Address already in use", out)
    out, code = run("--host 300.1.2.3")
    assert.are.equal(1, code)
    assert.matches("not an IPv4 or IPv6 address", out)
  end)

  it("binds the requested port and an IPv6 loopback", function()
    local probe = socket.bind("127.0.0.1", 0)
    local _, port = probe:getsockname()
    probe:close()
    local sb = sandbox.start{ args = { "--port", tostring(port), "--threads", "1" } }
    finally(function() sb:shutdown() end)
    assert.are.equal(tonumber(port), sb.port)
    assert.are.equal(200, (sb:request("GET", "/_sandbox/clock")))
    local v6 = socket.tcp6 and socket.bind("::1", 0)
    if not v6 then return end -- no IPv6 loopback on this machine
    v6:close()
    local sb6 = sandbox.start{ args = { "--host", "::1" } }
    finally(function() sb6:shutdown() end)
    assert.matches("^truv%-sandbox listening on http://%[::1%]:%d+\n$", sb6:stdout())
    local c = socket.tcp6()
    c:settimeout(2)
    assert(c:connect("::1", sb6.port))
    c:send("GET /_sandbox/clock HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    local answer = c:receive("*a")
    c:close()
    assert.matches("^HTTP/1%.1 200", answer)
  end)

  it("stops on SIGTERM with exit 0, even with delayed requests in flight", function()
    local sb = sandbox.start{ args = { "--latency-ms", "5000" } }
    local c = socket.tcp()
    c:settimeout(2)
    assert(c:connect("127.0.0.1", sb.port))
    c:send("GET /v1/orders/x/ HTTP/1.1\r\nHost: x\r\n\r\n")
    socket.sleep(0.1)
    local t0 = socket.gettime()
    assert.are.equal(0, sb:stop())
    assert.is_true(socket.gettime() - t0 < 3)
    c:close()
  end)

  it("stops on SIGINT with exit 0", function()
    local sb = sandbox.start{}
    os.execute("kill -INT " .. sb.pid)
    local rc = sandbox.wait_until(function()
      local f = io.open(sb.dir .. "/rc")
      if f then local s = f:read("a"); f:close(); return s:match("^%d+\n") end
    end, 5)
    assert.are.equal("0", rc and rc:match("%d+"))
    sb:stop()
  end)

  it("exits by itself once --parent-pid is gone", function()
    local p = io.popen("sleep 0.4 >/dev/null 2>&1 & echo $!")
    local pid = p:read("l")
    p:close()
    local sb = sandbox.start{ args = { "--parent-pid", pid }, watch_parent = false }
    local rc = sandbox.wait_until(function()
      local f = io.open(sb.dir .. "/rc")
      if f then local s = f:read("a"); f:close(); return s:match("^%d+\n") end
    end, 5)
    assert.are.equal("0", rc and rc:match("%d+"))
    sb:stop()
  end)
end)
