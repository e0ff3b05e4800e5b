-- core.multi: many requests in flight over one connection pool, against the
-- sandbox (real HTTP, real faults).
local core = require "truv.core"
local sandbox = require "spec.support.sandbox"

local under_valgrind = os.getenv("TRUV_UNDER_VALGRIND") ~= nil
-- a sanitizer's allocator keeps freed memory in quarantine: RSS says nothing then
local under_asan = os.getenv("ASAN_OPTIONS") ~= nil

local function rss_kb()
  local f = assert(io.open("/proc/self/status"))
  local s = f:read("a")
  f:close()
  return tonumber(s:match("VmRSS:%s*(%d+)"))
end

-- Established client sockets to 127.0.0.1:port, from /proc/net/tcp: what
-- the kernel says, not what libcurl reports.
local function connections_to(port)
  local n = 0
  for line in io.lines("/proc/net/tcp") do
    local rem_port, st = line:match("^%s*%d+: %x+:%x+ %x+:(%x+) (%x%x)")
    if rem_port and tonumber(rem_port, 16) == port and st == "01" then n = n + 1 end
  end
  return n
end

-- Runs m until nothing is pending (bounded); returns the completions.
local function drain(m, limit_s)
  local out, deadline = {}, core.monotonic() + (limit_s or 20)
  while m:pending() > 0 and core.monotonic() < deadline do
    for _, c in ipairs(assert(m:run(0.2, core.now()))) do out[#out + 1] = c end
  end
  return out
end

describe("core.multi", function()
  local sb, cases, cfg

  local function get_order(i, c)
    c = c or cfg
    return assert(core.build(c, "get_order", cases[(i - 1) % #cases + 1].order_id))
  end

  local function refresh(i)
    local case = cases[(i - 1) % #cases + 1]
    return assert(core.build(cfg, "refresh_order", case.order_id, { products = { case.product } }))
  end

  -- A multi closed when the test ends, however it ends.
  local function multi(opts)
    opts = opts or {}
    opts.proxy = ""
    local m = assert(core.multi(opts))
    finally(function() m:close() end)
    return m
  end

  lazy_setup(function()
    sb = sandbox.start{ args = { "--seed-cases", "40", "--mix", "active=1", "--rate-limit", "0",
                                 "--refresh-limit", "0", "--threads", "2" } }
    cases = sb:cases()
    cfg = { client_id = sb.client_id, secret = sb.secret, base_url = sb.base_url }
  end)
  lazy_teardown(function() if sb then sb:shutdown() end end)
  after_each(function() sb:faults{ reset = true } end)

  it("completes 200 concurrent requests, each with its own tag", function()
    sb:faults{ latency_ms = 150 }
    local m = multi{ max_in_flight = 200, max_host_connections = 200 }
    local before = sb:stats().requests.total
    for i = 1, 200 do
      assert.is_true(m:add(get_order(i), { n = i, id = cases[(i - 1) % #cases + 1].order_id }))
    end
    assert.equal(200, m:pending())
    local done = drain(m)
    assert.equal(200, #done)
    local seen = {}
    for _, c in ipairs(done) do
      assert.is_nil(c.err)
      assert.equal(200, c.meta.status)
      assert.is_string(c.meta.request_id)
      assert.equal(c.tag.id, c.doc.id)
      assert.is_nil(seen[c.tag.n])
      seen[c.tag.n] = true
    end
    assert.equal(200, sb:stats().requests.total - before)
    assert.equal(0, m:pending())
    m:close()
  end)

  it("keeps connections alive and reuses them", function()
    collectgarbage()
    local before = connections_to(sb.port)
    local m = multi{ max_in_flight = 8 }
    for round = 1, 6 do
      for i = 1, 8 do m:add(get_order(round * 8 + i), i) end
      for _, c in ipairs(drain(m)) do assert.equal(200, c.meta.status) end
    end
    local st = m:stats()
    assert.equal(48, st.transfers)
    assert.is_true(st.connects <= 8, "connects " .. st.connects)
    -- the kernel agrees: the pool's connections are still open
    assert.equal(st.connects, connections_to(sb.port) - before)
    m:close()
    assert.is_true(sandbox.wait_until(function() return connections_to(sb.port) == before end, 3))
  end)

  it("sends refreshes on the kept-alive connections, or fresh ones with billed_reuse_idle_s = 0",
     function()
    for _, idle in ipairs{ 4, 0 } do
      local m = multi{ max_in_flight = 4, billed_reuse_idle_s = idle }
      for i = 1, 4 do m:add(get_order(i), i) end
      drain(m)
      local warm = m:stats().connects
      for i = 1, 5 do
        assert.is_true(m:add(refresh(10 + i), "refresh" .. i))
        local done = drain(m)
        assert.equal(200, done[1].meta.status, done[1].err and tostring(done[1].err.message))
        assert.equal(idle == 0 and warm + i or warm, m:stats().connects)
      end
      -- a safe request rides a kept-alive one either way
      m:add(get_order(1), "get")
      drain(m)
      assert.equal(idle == 0 and warm + 5 or warm, m:stats().connects)
      m:close()
    end
  end)

  it("refuses a billed_reuse_idle_s that is not whole seconds from 0 to 3600", function()
    for _, bad in ipairs{ -1, 3601, 1.5, "4" } do
      assert.has_error(function() core.multi{ billed_reuse_idle_s = bad } end)
    end
  end)

  describe("maps failures like the blocking transport", function()
    local function both(req_fn)
      local m, http = multi(), assert(core.http{ proxy = "" })
      m:add(req_fn(), "t")
      local c = drain(m)[1]
      local _, herr = http:perform(req_fn(), core.now())
      m:close()
      http:close()
      return c, herr
    end

    local function same(c, herr)
      assert.is_table(c.err)
      assert.is_table(herr)
      assert.equal(herr.kind, c.err.kind)
      assert.equal(herr.code, c.err.code)
      assert.equal(herr.maybe_sent, c.err.maybe_sent)
    end

    it("connection refused: never sent", function()
      local s = require("socket").bind("127.0.0.1", 0)
      local _, port = s:getsockname()
      s:close()
      local dead = { client_id = "x", secret = "y", base_url = "http://127.0.0.1:" .. port .. "/v1/" }
      local c, herr = both(function() return get_order(1, dead) end)
      same(c, herr)
      assert.equal("network", c.err.kind)
      assert.equal("connect", c.err.code)
      assert.is_false(c.err.maybe_sent)
    end)

    it("reset after the request was processed: maybe sent", function()
      sb:faults{ reset_after = 1 }
      local c, herr = both(function() return refresh(20) end)
      same(c, herr)
      assert.equal("network", c.err.kind)
      assert.is_true(c.err.maybe_sent)
    end)

    it("truncated body", function()
      sb:faults{ truncate = 1 }
      local c, herr = both(function() return get_order(2) end)
      same(c, herr)
      assert.equal("truncated_body", c.err.code)
      assert.is_true(c.err.maybe_sent)
    end)

    it("an error answer is classified as by http:perform", function()
      local bad = { client_id = sb.client_id, secret = "sandbox-wrong", base_url = sb.base_url }
      local c, herr = both(function() return get_order(3, bad) end)
      same(c, herr)
      assert.equal("auth", c.err.kind)
      assert.equal(401, c.err.status)
    end)
  end)

  it("times out a request that gets no answer in time", function()
    sb:faults{ latency_ms = 1500 }
    local m = multi{ timeout_ms = 200 }
    m:add(refresh(21), "slow")
    local t0 = core.monotonic()
    local c = drain(m)[1]
    assert.is_true(core.monotonic() - t0 < 1.2)
    assert.equal("timeout", c.err.code)
    assert.is_true(c.err.maybe_sent)
    m:close()
  end)

  it("cancels a transfer: it is never reported", function()
    sb:faults{ latency_ms = 400 }
    local m = multi()
    local a, b, c = {}, {}, {}
    m:add(get_order(1), a)
    m:add(get_order(2), b)
    m:add(get_order(3), c)
    assert.same({}, m:run(0.1, core.now()))
    assert.is_true(m:cancel(b))
    assert.is_false(m:cancel(b))
    assert.is_false(m:cancel("never added"))
    assert.equal(2, m:pending())
    local done = drain(m)
    assert.equal(2, #done)
    assert.is_true(done[1].tag ~= b and done[2].tag ~= b)
    assert.equal(1, m:stats().cancelled)
    -- the tag may be used again
    assert.is_true(m:add(get_order(4), b))
    assert.equal(b, drain(m)[1].tag)
    m:close()
  end)

  it("refuses a duplicate tag and a full pool", function()
    sb:faults{ latency_ms = 200 }
    local m = multi{ max_in_flight = 2 }
    assert.is_true(m:add(get_order(1), "x"))
    local ok, err = m:add(get_order(2), "x")
    assert.is_nil(ok)
    assert.equal("duplicate_tag", err.code)
    assert.is_true(m:add(get_order(2), "y"))
    ok, err = m:add(get_order(3), "z")
    assert.is_nil(ok)
    assert.equal("full", err.code)
    assert.equal(2, #drain(m))
    assert.is_true(m:add(get_order(3), "z"))
    m:close()
  end)

  it("checks its arguments", function()
    local m = multi()
    assert.has_error(function() m:add("not a request", 1) end)
    assert.has_error(function() m:add(get_order(1), nil) end)
    assert.has_error(function() m:add(get_order(1), 0 / 0) end)
    assert.has_error(function() m:run(-1, core.now()) end)
    assert.has_error(function() core.multi{ max_in_flight = "many" } end)
    assert.has_error(function() core.multi{ max_in_flight = 100000 } end)
    m:close()
    assert.has_error(function() m:pending() end)
  end)

  it("reads the transport options exactly as core.http does", function()
    for _, make in ipairs{ core.http, core.multi } do
      for _, bad in ipairs{ { timeout_ms = -1 }, { timeout_ms = "1" }, { timeout_ms = 2e9 },
                            { connect_timeout_ms = 0 / 0 }, { ca_file = 1 }, { proxy = true } } do
        local k = next(bad)
        assert.has_error(function() make(bad) end,
                         nil, k .. " = " .. tostring(bad[k]) .. " accepted")
      end
      local ok = assert(make{ timeout_ms = 0, connect_timeout_ms = 1e9, ca_path = "/etc/ssl/certs",
                              proxy = "", insecure = false })
      ok:close()
    end
  end)

  it("refuses a receive buffer out of range as an invalid option", function()
    local bad, err = core.multi{ buffer_size = 10 }
    assert.is_nil(bad)
    assert.equal("invalid", err.kind)
    assert.equal("buffer_size", err.fields[1].field)
  end)

  it("keeps requests and tags alive while in flight", function()
    local m = multi()
    local weak = setmetatable({}, { __mode = "v" })
    for i = 1, 5 do
      local tag = { i = i }
      weak[i] = tag
      m:add(get_order(i), tag)   -- neither the request nor the tag is kept here
    end
    collectgarbage()
    collectgarbage()
    do
      local done = drain(m)
      assert.equal(5, #done)
      for _, c in ipairs(done) do assert.equal(200, c.meta.status) end
    end
    m:close()
    collectgarbage()
    collectgarbage()
    assert.is_nil(next(weak))
  end)

  it("aborts what is in flight when closed or collected", function()
    sb:faults{ latency_ms = 2000 }
    collectgarbage()
    local before = connections_to(sb.port)
    local m = multi()
    for i = 1, 10 do m:add(i % 2 == 0 and refresh(i) or get_order(i), i) end
    m:run(0.1, core.now())
    m:close()
    assert.equal("truv.multi (closed)", tostring(m))
    m:close()   -- twice is fine
    do
      local m2 = assert(core.multi{ proxy = "" })   -- left to the collector
      for i = 1, 10 do m2:add(get_order(i), i) end
      m2:run(0.1, core.now())
      assert.equal(before + 10, connections_to(sb.port))
    end
    collectgarbage()
    collectgarbage()
    assert.is_true(sandbox.wait_until(function() return connections_to(sb.port) == before end, 3))
  end)

  it("returns documents as tables when asked", function()
    local m = multi()
    m:add(get_order(1), 1)
    local c
    while not c do c = m:run(1, core.now(), "table")[1] end
    assert.equal("table", type(c.doc))
    assert.equal(cases[1].order_id, c.doc.id)
    m:close()
  end)

  -- 500 transfers waiting for slow answers: what each costs in this
  -- process's resident memory (requests, tags, libcurl handles,
  -- connections, buffers), from before the requests are built.
  it("holds 500 requests in flight in a bounded amount of memory", function()
    if under_valgrind or under_asan then
      return pending("resident memory is not the library's under valgrind or ASan")
    end
    local n = 500
    sb:faults{ latency_ms = 1000 }
    collectgarbage()
    collectgarbage()
    local open_before = connections_to(sb.port)
    local base = rss_kb()
    local m = multi{ max_in_flight = n, max_host_connections = n, timeout_ms = 20000 }
    for i = 1, n do assert(m:add(get_order(i), i)) end
    local t0 = core.monotonic()
    while connections_to(sb.port) - open_before < n and core.monotonic() - t0 < 5 do
      assert.same({}, m:run(0.02, core.now()))
    end
    assert.same({}, m:run(0.2, core.now()))
    assert.equal(n, connections_to(sb.port) - open_before)
    local during = rss_kb()
    local per = (during - base) * 1024 / n
    print(string.format("\nmulti: %d in flight, %.0f bytes of RSS each (%d kB -> %d kB)",
                        n, per, base, during))
    assert.is_true(per <= 32 * 1024, "per request in flight: " .. per)
    do
      local done = drain(m)
      assert.equal(n, #done)
      for _, c in ipairs(done) do assert.equal(200, c.meta.status) end
    end
    -- and again, with the pool warm: memory stays flat across cycles
    collectgarbage()
    local after_first = rss_kb()
    for _ = 1, 3 do
      for i = 1, n do m:add(get_order(i), i) end
      drain(m)
      collectgarbage()
    end
    local after = rss_kb()
    print(string.format("multi: RSS %d kB after one cycle of %d, %d kB after four", after_first, n,
                        after))
    -- (documents are the caller's: the allocator keeps their high-water mark)
    assert.is_true(after - after_first < 64 * 1024)
  end)
end)
