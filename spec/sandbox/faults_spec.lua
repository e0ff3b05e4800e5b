-- Injected faults: latency, 5xx, resets before/after processing, truncation, stalls.
local sandbox = require "spec.support.sandbox"
local socket = require "socket"

local function timed(f)
  local t0 = socket.gettime()
  local a, b, c, d = f()
  return socket.gettime() - t0, a, b, c, d
end

describe("fault injection", function()
  local sb, cases, next_case = nil, nil, 0

  local function fresh_income_case()
    repeat
      next_case = next_case + 1
    until cases[next_case].product == "income"
    return cases[next_case]
  end

  lazy_setup(function()
    sb = sandbox.start{ args = { "--seed-cases", "40", "--mix", "active=1", "--rate-limit", "0",
                                 "--refresh-limit", "0" } }
    cases = sb:cases()
  end)
  lazy_teardown(function() if sb then sb:shutdown() end end)
  after_each(function() sb:faults{ reset = true } end)

  local function get_order(c, timeout)
    return sb:request("GET", "orders/" .. c.order_id .. "/", nil, nil, timeout)
  end

  it("delays answers by latency_ms (not /_sandbox/ calls)", function()
    sb:faults{ latency_ms = 150 }
    local took, status = timed(function() return get_order(cases[1]) end)
    assert.are.equal(200, status)
    assert.is_true(took >= 0.15, "took " .. took)
    took = timed(function() return sb:now() end)
    assert.is_true(took < 0.1, "admin took " .. took)
    took, status = timed(function() return sb:request("GET", "nope/") end)
    assert.are.equal(404, status)
    assert.is_true(took >= 0.15, "404 took " .. took)
  end)

  it("adds uniform jitter", function()
    sb:faults{ latency_jitter_ms = 100 }
    local max, min = 0, 1
    for _ = 1, 12 do
      local took = timed(function() return get_order(cases[1]) end)
      max, min = math.max(max, took), math.min(min, took)
    end
    assert.is_true(max > 0.02 and max < 0.3, "max " .. max)
    assert.is_true(min < max)
  end)

  it("answers 500, 502 or 503 without processing", function()
    local c = fresh_income_case()
    local before = sb:stats()
    sb:faults{ fault_5xx = 1 }
    local seen = {}
    for _ = 1, 40 do
      local status, body, headers = sb:request("POST", "orders/" .. c.order_id .. "/",
        { products = { "income" } })
      seen[status] = true
      assert.is_string(body.detail)
      assert.are.equal("application/json", headers["content-type"])
    end
    assert.are.same({ [500] = true, [502] = true, [503] = true }, seen)
    sb:faults{ reset = true }
    local after = sb:stats()
    assert.are.equal(before.refresh.tasks_created, after.refresh.tasks_created)
    assert.are.equal(40, after.faults["5xx"] - before.faults["5xx"])
    local _, o = get_order(c)
    assert.are.equal(sandbox.null, o.refresh_order)
  end)

  it("reset_before closes the connection and creates nothing", function()
    local c = fresh_income_case()
    local before = sb:stats()
    sb:faults{ reset_before = 1 }
    local status, err = sb:request("POST", "orders/" .. c.order_id .. "/", { products = { "income" } })
    assert.is_nil(status)
    assert.is_string(err)
    sb:faults{ reset = true }
    local after = sb:stats()
    assert.are.equal(before.refresh.tasks_created, after.refresh.tasks_created)
    assert.are.equal(before.refresh.billed, after.refresh.billed)
    assert.are.equal(1, after.faults.reset_before - before.faults.reset_before)
    assert.are.equal(1, after.requests.by_endpoint["POST /v1/orders/{id}/"].reset_before)
    local _, o = get_order(c)
    assert.are.equal(sandbox.null, o.refresh_order)
  end)

  it("reset_after processes the refresh, bills it, and never answers", function()
    local c = fresh_income_case()
    local before = sb:stats()
    sb:faults{ reset_after = 1 }
    local status, err = sb:request("POST", "orders/" .. c.order_id .. "/", { products = { "income" } })
    assert.is_nil(status)
    assert.is_string(err)
    sb:faults{ reset = true }
    local after = sb:stats()
    assert.are.equal(#c.employers, after.refresh.tasks_created - before.refresh.tasks_created)
    assert.are.equal(#c.employers, after.refresh.billed - before.refresh.billed)
    assert.are.equal(1, after.refresh.order_refreshes - before.refresh.order_refreshes)
    assert.are.equal(1, after.faults.reset_after - before.faults.reset_after)
    local _, o = get_order(c)
    assert.matches("^%x+$", o.refresh_order)
    -- the original's events, refresh orders included, show what happened
    local _, ev = sb:request("GET", "orders/" .. c.order_id .. "/events/?include_refresh_orders=true")
    local last = ev.results[#ev.results]
    assert.are.same({ "order_created", true, o.refresh_order }, { last.type, last.is_refresh, last.order_id })
  end)

  it("truncate sends fewer bytes than Content-Length, then closes", function()
    sb:faults{ truncate = 1 }
    local status, err, partial = get_order(cases[1])
    assert.is_nil(status)
    assert.are.equal("closed", err)
    assert.are.equal(200, partial.status)
    local declared = tonumber(partial.headers["content-length"])
    assert.is_true(#partial.raw > 0 and #partial.raw < declared, #partial.raw .. " of " .. declared)
  end)

  it("stall sends part of the body, nothing for stall_ms, then closes", function()
    sb:faults{ stall = 1, stall_ms = 300 }
    local took, status, err, partial = timed(function() return get_order(cases[1], 5) end)
    assert.is_nil(status)
    assert.are.equal("closed", err)
    assert.are.equal(200, partial.status)
    assert.is_true(#partial.raw > 0 and #partial.raw < tonumber(partial.headers["content-length"]))
    assert.is_true(took >= 0.3 and took < 3, "took " .. took)
    took, status, err = timed(function() return get_order(cases[1], 0.1) end)
    assert.is_true(took < 0.3, "took " .. took)
    assert.is_nil(status)
    assert.are.equal("timeout", err)
  end)

  it("closes a stalled answer after stall_ms while keep-alive connections idle", function()
    -- a client's pool: connections that answered once and stay open, idle,
    -- on every worker of the sandbox
    local idle = {}
    finally(function() for _, c in ipairs(idle) do c:close() end end)
    for i = 1, 4 do
      local c = socket.tcp()
      c:settimeout(5)
      assert(c:connect("127.0.0.1", sb.port))
      assert(c:send("GET /_sandbox/stats HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"))
      local length
      repeat
        local line = assert(c:receive("*l"))
        length = length or tonumber(line:lower():match("^content%-length:%s*(%d+)"))
      until line == ""
      assert(c:receive(length))
      idle[i] = c
    end
    sb:faults{ stall = 1, stall_ms = 300 }
    for _ = 1, 3 do
      local took, status, err = timed(function() return get_order(cases[1], 5) end)
      assert.is_nil(status)
      assert.are.equal("closed", err)
      assert.is_true(took >= 0.3 and took < 2, "took " .. took)
    end
  end)

  it("applies only to requests matching the METHOD /path prefix", function()
    local c = fresh_income_case()
    sb:faults{ reset_before = 1, latency_ms = 100, match = "POST /v1/orders/" }
    local took, status = timed(function() return get_order(c) end)
    assert.are.equal(200, status)
    assert.is_true(took < 0.1)
    local token = sb:connections(c.order_id)[1].access_token
    status = sb:request("POST", "refresh/tasks/", { access_token = token, product_type = "income" })
    assert.are.equal(200, status)
    status = sb:request("POST", "orders/", { products = { "income" }, first_name = "A", last_name = "B" })
    assert.is_nil(status)
    status = sb:request("POST", "orders/" .. c.order_id .. "/", { products = { "income" } })
    assert.is_nil(status)
    sb:faults{ match = "GET" }
    status = get_order(c)
    assert.is_nil(status)
  end)

  it("applies only to METHOD /path itself when the match ends with $", function()
    local c = fresh_income_case()
    local before = sb:stats()
    sb:faults{ reset_after = 1, match = "POST /v1/orders/$" }
    local status = sb:request("POST", "orders/" .. c.order_id .. "/", { products = { "income" } })
    assert.are.equal(200, status)
    status = sb:request("POST", "orders/", { products = { "income" }, first_name = "A", last_name = "B" })
    assert.is_nil(status)
    status = sb:request("GET", "orders/" .. c.order_id .. "/")
    assert.are.equal(200, status)
    sb:faults{ reset = true }
    local after = sb:stats()
    assert.are.equal(1, after.faults.reset_after - before.faults.reset_after)
    -- processed: the order exists although nothing was answered
    assert.are.equal(1, after.orders.created - before.orders.created)
  end)

  it("never applies to /_sandbox/ endpoints", function()
    sb:faults{ reset_before = 1, latency_ms = 500 }
    local took = timed(function()
      sb:now(); sb:stats(); sb:cases(); sb:faults()
    end)
    assert.is_true(took < 0.4)
  end)

  it("keeps unspecified settings on POST and clears all on reset", function()
    local f = sb:faults{ latency_ms = 10, stall = 0.25 }
    assert.are.equal(10, f.latency_ms)
    f = sb:faults{ fault_5xx = 0.5 }
    assert.are.equal(10, f.latency_ms)
    assert.are.equal(0.25, f.stall)
    assert.are.equal(0.5, f.fault_5xx)
    assert.are.equal("", f.match)
    f = sb:faults{ reset = true }
    assert.are.same({ latency_ms = 0, latency_jitter_ms = 0, fault_5xx = 0, reset_before = 0, reset_after = 0,
                      truncate = 0, stall = 0, stall_ms = 5000, match = "" }, f)
    local status = sb:request("POST", "/_sandbox/faults", { fault_5xx = 2, latency_ms = -1 })
    assert.are.equal(400, status)
    assert.are.same(f, sb:faults())
  end)

  it("serves hundreds of concurrently delayed requests without a thread each", function()
    sb:faults{ latency_ms = 200 }
    local n = 500
    local socks, pending, data = {}, {}, {}
    local request = "GET /v1/orders/" .. cases[1].order_id .. "/ HTTP/1.1\r\nHost: x\r\n" ..
                    "X-Access-Client-Id: sandbox-client-id\r\nX-Access-Secret: sandbox-secret\r\n" ..
                    "Connection: close\r\n\r\n"
    local t0 = socket.gettime()
    for i = 1, n do
      local s = socket.tcp()
      s:settimeout(5)
      assert(s:connect("127.0.0.1", sb.port))
      assert(s:send(request))
      s:settimeout(0)
      socks[i], pending[#pending + 1], data[s] = s, s, {}
    end
    local deadline = t0 + 20
    while #pending > 0 and socket.gettime() < deadline do
      local ready = socket.select(pending, nil, 1)
      for _, s in ipairs(ready) do
        local chunk, err, partial = s:receive(65536)
        local got = chunk or partial
        if got and #got > 0 then table.insert(data[s], got) end
        if err == "closed" then
          for j, p in ipairs(pending) do if p == s then table.remove(pending, j) break end end
        end
      end
    end
    local took = socket.gettime() - t0
    local ok = 0
    for i = 1, n do
      socks[i]:close()
      if table.concat(data[socks[i]]):match("^HTTP/1%.1 200") then ok = ok + 1 end
    end
    assert.are.equal(n, ok)
    assert.is_true(took >= 0.2 and took < 5, "took " .. took)
  end)
end)

describe("fault flags", function()
  it("configure the same settings from the command line", function()
    local sb = sandbox.start{ args = { "--latency-ms", "5", "--latency-jitter-ms", "6", "--fault-5xx", "0.1",
      "--fault-reset-before", "0.2", "--fault-reset-after", "0.3", "--fault-truncate", "0.05",
      "--fault-stall", "0.06", "--stall-ms", "700", "--fault-match", "POST /v1/orders/" } }
    finally(function() sb:shutdown() end)
    assert.are.same({ latency_ms = 5, latency_jitter_ms = 6, fault_5xx = 0.1, reset_before = 0.2,
                      reset_after = 0.3, truncate = 0.05, stall = 0.06, stall_ms = 700,
                      match = "POST /v1/orders/" }, sb:faults())
  end)
end)
