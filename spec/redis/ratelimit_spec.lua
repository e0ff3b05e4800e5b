-- The fleet's rate budget (truv.ratelimit.redis): exact admissions and waits
-- on an injected clock, priorities, the shared 429 cooldown; three
-- processes that together never exceed the budget in any window and all
-- pause on one's reported cooldown; three client processes against the
-- sandbox, all held back once Truv throttled one; two clients in one
-- process (the held request never sent); fail closed, or open when asked.
local ratelimit = require "truv.ratelimit"
local core = require "truv.core"
local truv = require "truv"
local redis_server = require "spec.support.redis_server"
local sandbox = require "spec.support.sandbox"
local files = require "spec.support.files"

local SRC = os.getenv("TRUV_SOURCE_DIR") or "."
local function ns() return "truv:rate-" .. core.redis_ticket() end

describe("the fleet's rate budget in Redis", function()
  local srv

  lazy_setup(function() srv = redis_server.start() end)
  lazy_teardown(function() if srv then srv:stop() end end)

  it("admits per_minute in the window, batch only up to its share, and names the exact wait",
     function()
    local t = 1700000000
    local clock = function() return t end
    local space = ns()
    local rl = assert(ratelimit.redis{ url = srv:url(0), namespace = space, per_minute = 10,
                                       window = 60, reserved = 0.2, clock = clock })
    for i = 1, 8 do
      t = 1700000000 + i
      assert.is_true((rl:acquire("batch")))
    end
    t = 1700000009
    local ok, wait, why = rl:acquire("batch")
    assert.is_false(ok)
    assert.equal("budget", why)
    assert.equal(1700000001 + 60 - t, wait)   -- the oldest leaves
    assert.is_true((rl:acquire("interactive")))
    assert.is_true((rl:acquire()))
    ok, wait = rl:acquire("interactive")
    assert.is_false(ok)
    assert.equal(52, wait)
    t = 1700000061   -- the first left: room for interactive work only
    assert.is_true((rl:acquire("interactive")))
    assert.is_false((rl:acquire("batch")))
    assert.has_error(function() rl:acquire("urgent") end)
    rl:close()
  end)

  it("refuses everyone during a shared cooldown, which extends and never shortens", function()
    local t = 1700000000
    local clock = function() return t end
    local space = ns()
    local a = assert(ratelimit.redis{ url = srv:url(0), namespace = space, clock = clock })
    local b = assert(ratelimit.redis{ url = srv:url(0), namespace = space, clock = clock })
    assert.is_true((a:cooldown(30)))
    local ok, wait, why = b:acquire("interactive")
    assert.is_false(ok)
    assert.equal("cooldown", why)
    assert.equal(30, wait)
    assert.is_true((b:cooldown(5)))   -- shorter: the 30 s stand
    t = t + 10
    assert.equal(20, select(2, a:acquire("batch")))
    t = t + 20
    assert.is_true((a:acquire("batch")))
    -- wait() gives up past max_wait with a throttled error saying when
    assert.is_true((b:cooldown(100)))
    local slept = 0
    local w, err = b:wait("interactive", function(s) slept = slept + s end, 5)
    assert.is_nil(w)
    assert.equal("throttled", err.kind)
    assert.equal("fleet_cooldown", err.code)
    assert.equal(t + 100, err.retry_at)
    assert.equal(0, slept)
    a:close()
    b:close()
  end)

  it("keeps three processes within the budget in every window; one's 429 pauses all", function()
    local dir = files.tmpdir("truv-rate-spec")
    local space = ns()
    -- scaled down: 40 per 0.5 s window, 1.6 s of load (bounded), one 429 of 0.3 s half-way
    local per, window, duration = 40, 0.5, 1.6
    local cmds = {}
    local roles = { { "interactive" }, { "batch", 0.8, 0.3 }, { "batch" } }
    for i, r in ipairs(roles) do
      cmds[#cmds + 1] = string.format("lua5.4 %s %s %s %d %s %s %s %s %s %s &",
        files.quote(SRC .. "/spec/redis/support/rate_worker.lua"), files.quote(srv:url(0)), space,
        per, window, r[1], duration, files.quote(dir .. "/w" .. i), r[2] or "", r[3] or "")
    end
    cmds[#cmds + 1] = "wait"
    os.execute(table.concat(cmds, "\n"))
    local times, by, cd_start, cd_len = {}, {}, nil, nil
    for i = 1, 3 do
      local text = assert(files.read(dir .. "/w" .. i), "worker " .. i .. " wrote nothing")
      by[i] = 0
      for line in text:gmatch("[^\n]+") do
        local c, rem = line:match("^cooldown (%S+) (%S+)")
        if c then cd_start, cd_len = tonumber(c), tonumber(rem)
        else
          times[#times + 1] = { t = tonumber(line), batch = roles[i][1] == "batch" }
          by[i] = by[i] + 1
        end
      end
    end
    os.execute("rm -rf " .. files.quote(dir))
    table.sort(times, function(x, y) return x.t < y.t end)
    -- never more than `per` admissions in any window (t - window, t]; a batch
    -- admission only while fewer than per - 10 % were in the window before it
    -- (the rest is interactive work's: the first spec shows it taken)
    local j, k, batch_threshold = 1, 1, per - 4
    for i = 1, #times do
      local t = times[i].t
      while times[j].t <= t - window do j = j + 1 end
      assert.is_true(i - j + 1 <= per, "window ending " .. t .. " holds " .. (i - j + 1))
      while times[k].t < t do k = k + 1 end   -- k: the first admission at t
      local before = k - j                      -- in the window, strictly earlier
      if times[i].batch then
        assert.is_true(before < batch_threshold,
                       "batch admitted at " .. t .. " with " .. before .. " in the window")
      end
    end
    -- the budget was used (the load is meant to saturate it), and shared
    assert.is_true(#times >= per * 2, "only " .. #times .. " admitted")
    for i = 1, 3 do assert.is_true(by[i] > 0, "worker " .. i .. " got nothing") end
    -- nothing admitted, by anyone, during the cooldown (after its first millisecond)
    assert.is_number(cd_start)
    assert.equal(0.3, cd_len)
    for _, a in ipairs(times) do
      local t = a.t
      assert.is_false(t > cd_start + 0.001 and t < cd_start + cd_len - 0.001,
                      "admitted at " .. t .. " during the cooldown from " .. cd_start)
    end
  end)

  it("pauses three processes when Truv throttles one of them", function()
    local sb = sandbox.start{ args = { "--seed-cases", "2", "--mix", "active=1",
                                       "--rate-limit", "20" } }
    local dir = files.tmpdir("truv-rate-429")
    local order = sb:cases()[1].order_id
    local cmds, space = {}, ns()   -- one namespace for the three: one secret
    for i = 1, 3 do
      cmds[#cmds + 1] = string.format("lua5.4 %s %s %s %s %s %s %s 1.5 %s &",
        files.quote(SRC .. "/spec/redis/support/client_worker.lua"), files.quote(srv:url(0)),
        space, files.quote(sb.base_url), files.quote(sb.client_id), files.quote(sb.secret),
        order, files.quote(dir .. "/c" .. i))
    end
    cmds[#cmds + 1] = "wait"
    os.execute(table.concat(cmds, "\n"))
    local total = { ok = 0, throttled = 0, held = 0, other = 0 }
    for i = 1, 3 do
      local text = assert(files.read(dir .. "/c" .. i), "client " .. i .. " wrote nothing")
      local held = 0
      for k, v in text:gmatch("(%a+) (%d+)") do
        total[k] = total[k] + tonumber(v)
        if k == "held" then held = tonumber(v) end
      end
      assert.is_true(held > 0, "client " .. i .. " never paused")
    end
    os.execute("rm -rf " .. files.quote(dir))
    local stats = sb:stats()
    sb:stop()
    -- Truv allowed 20; it throttled at most one request per process (those
    -- in flight when the first 429 came), never again: everyone else waited
    assert.equal(20, total.ok)
    assert.is_true(total.throttled >= 1 and total.throttled <= 3,
                   "Truv throttled " .. total.throttled)
    assert.equal(0, total.other)
    assert.equal(20 + total.throttled, stats.requests.total)
  end)

  it("holds a client's requests back after a sandbox 429 another client got", function()
    local sb = sandbox.start{ args = { "--seed-cases", "2", "--mix", "active=1",
                                       "--rate-limit", "3" } }
    local space = ns()
    local function client()
      return assert(truv.new{ client_id = sb.client_id, secret = sb.secret,
        base_url = sb.base_url, quota = false, retry = { attempts = 1 },
        ratelimit = assert(ratelimit.redis{ url = srv:url(0), namespace = space,
                                            max_wait = 0.5 }) })
    end
    local a, b = client(), client()
    local order = sb:cases()[1].order_id
    local err
    for _ = 1, 6 do
      local doc
      doc, err = a:get_order(order)
      if not doc then break end
    end
    assert.equal("throttled", err.kind)
    assert.equal(429, err.status)
    local before = sb:stats().requests.total
    local doc, berr = b:get_order(order)
    assert.is_nil(doc)
    assert.equal("throttled", berr.kind)
    assert.equal("fleet_cooldown", berr.code)
    assert.is_nil(berr.status)                       -- never sent
    assert.equal(before, sb:stats().requests.total)  -- Truv saw nothing from b
    a:close()
    b:close()
    sb:stop()
  end)

  it("fails closed when Redis is unreachable, or open when asked", function()
    local dead = redis_server.start()
    local closed = assert(ratelimit.redis{ url = dead:url(0), namespace = ns(), timeout_ms = 200 })
    local logged = {}
    local open = assert(ratelimit.redis{ url = dead:url(0), namespace = ns(), timeout_ms = 200,
      fail_open = true, log = function(level, msg) logged[#logged + 1] = level .. ": " .. msg end })
    dead:stop()
    local ok, err = closed:acquire("batch")
    assert.is_nil(ok)
    assert.equal("internal", err.kind)
    assert.equal("store_unavailable", err.code)
    assert.matches("rate budget store is unavailable", err.message)
    assert.is_true((open:acquire("batch")))
    assert.is_true((open:acquire("batch")))
    assert.equal(1, #logged)   -- once per outage
    assert.matches("^warn: the fleet rate budget is unavailable", logged[1])
  end)
end)
