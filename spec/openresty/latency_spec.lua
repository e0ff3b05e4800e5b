-- A refresh waiting on a slow Truv never blocks its nginx worker: with the
-- sandbox answering slowly and a refresh in flight through the gateway,
-- other requests to the same (only) worker are served meanwhile.
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

  -- Not a timing bound (the machine is shared): an order of events. Each of
  -- the sandbox's two answers takes 3 s; a worker blocked in a call would
  -- serve nothing else until the refresh had answered, so every unrelated
  -- request answered while the refresh's own answer has not come proves the
  -- worker kept serving.
  it("answers unrelated requests while a refresh waits on a slow Truv", function()
    assert.equal(1, #srv:workers())
    sb:faults{ latency_ms = 3000 }
    local case = income_case()
    -- the refresh: GET the order (3 s), then POST the refresh (3 s)
    local c = socket.tcp()
    c:settimeout(20)
    assert(c:connect("127.0.0.1", srv.port))
    local body = sandbox.json.encode{ order_id = case.order_id, product = case.product }
    assert(c:send(string.format("POST /renewals/%s/refresh HTTP/1.0\r\nHost: x\r\n" ..
                                "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
                                case.case_id, #body, body)))
    socket.sleep(0.1)   -- the worker is now waiting on the sandbox
    local function refresh_answered()
      c:settimeout(0)
      local _, err, partial = c:receive(1)
      c:settimeout(20)
      return err ~= "timeout" or (partial and #partial > 0)
    end
    for i = 1, 10 do
      local ev = sandbox.json.encode{ webhook_id = string.format("%032x", i),
        event_type = "task-status-updated", updated_at = "2026-01-01T00:00:0" .. (i % 10) .. "Z",
        task_id = "t" .. i, status = "login" }
      local status = srv:request("POST", "/truv/webhooks", ev,
                                 { ["X-WEBHOOK-SIGN"] = truv.webhook.sign(ev, sb.secret) })
      assert.equal(200, status)
      assert.is_false(refresh_answered(), "webhook " .. i .. " was served only after the refresh")
    end
    -- and the refresh itself went through, after both slow calls
    local answer = c:receive("*a")
    c:close()
    sb:faults{ reset = true }
    assert.matches("^HTTP/1%.%d 202", answer)
    assert.matches('"route":"wait"', answer)
  end)

  it("logged no error", function()
    assert.same({}, srv:log_lines())
  end)
end)
