-- A refresh waiting on a slow Truv never blocks its nginx worker: with the
-- sandbox answering after 500 ms and a refresh in flight through the
-- gateway, other requests to the same (only) worker answer at once.
local openresty = require "spec.support.openresty"
local sandbox = require "spec.support.sandbox"
local socket = require "socket"
local truv = require "truv"

describe("the gateway under a slow Truv", function()
  local srv, sb

  lazy_setup(function()
    sb = sandbox.start{ args = { "--seed-cases", "6", "--rng-seed", "5", "--rate-limit", "0",
                                 "--mix", "active=1" } }
    srv = openresty.start{
      env = { TRUV_CLIENT_ID = sb.client_id, TRUV_SECRET = sb.secret, TRUV_BASE_URL = sb.base_url },
      conf = openresty.example{ workers = 1, http = "    lua_shared_dict test_events 1m;" },
    }
  end)

  lazy_teardown(function()
    if srv then srv:stop() end
    if sb then sb:stop() end
  end)

  local function income_case()
    for _, c in ipairs(sb:cases()) do
      if c.product == "income" then return c end
    end
    error("no income case")
  end

  it("answers an unrelated request in under 50 ms while a refresh waits 500 ms per call", function()
    assert.equal(1, #srv:workers())
    sb:faults{ latency_ms = 500 }
    local case = income_case()
    -- the refresh: GET the order (500 ms), then POST the refresh (500 ms)
    local c = socket.tcp()
    c:settimeout(5)
    assert(c:connect("127.0.0.1", srv.port))
    local body = sandbox.json.encode{ order_id = case.order_id, product = case.product }
    local t0 = socket.gettime()
    assert(c:send(string.format("POST /renewals/%s/refresh HTTP/1.0\r\nHost: x\r\n" ..
                                "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
                                case.case_id, #body, body)))
    socket.sleep(0.1)   -- the worker is now waiting on the sandbox
    local slowest = 0
    for i = 1, 10 do
      local ev = sandbox.json.encode{ webhook_id = string.format("%032x", i),
        event_type = "task-status-updated", updated_at = "2026-01-01T00:00:0" .. (i % 10) .. "Z",
        task_id = "t" .. i, status = "login" }
      local t = socket.gettime()
      local status = srv:request("POST", "/truv/webhooks", ev,
                                 { ["X-WEBHOOK-SIGN"] = truv.webhook.sign(ev, sb.secret) })
      local took = socket.gettime() - t
      assert.equal(200, status)
      if took > slowest then slowest = took end
      assert.is_true(socket.gettime() - t0 < 0.95, "the refresh was still in flight")
      socket.sleep(0.05)
    end
    assert.is_true(slowest < 0.05, string.format("an unrelated request took %.1f ms",
                                                  slowest * 1000))
    -- and the refresh itself went through, after both slow calls
    local answer = c:receive("*a")
    local elapsed = socket.gettime() - t0
    c:close()
    sb:faults{ reset = true }
    assert.matches("^HTTP/1%.%d 202", answer)
    assert.matches('"route":"wait"', answer)
    assert.is_true(elapsed >= 1.0, "took " .. elapsed .. " s")
  end)

  it("logged no error", function()
    assert.same({}, srv:log_lines())
  end)
end)
