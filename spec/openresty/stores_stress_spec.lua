-- The shared-dictionary stores' cross-worker guarantee under an adversary
-- (spec/openresty/lua/stress_runner.lua): worker 0 busy-waits, without
-- yielding, inside the stores' critical sections (after reading a record,
-- before writing one, before taking a lock) while worker 1 works on the same
-- keys; a worker that blocks 2.5 s without yielding between its decision
-- and its write (longer than the 2 s lease a lock used to be: that design
-- admitted twice in every such round); and a worker killed half-way through
-- a reserve, holding its locks.
-- Nothing may be admitted twice, nothing lost, and a dead worker's locks
-- must not block the others.
--
-- Bounded: TRUV_STRESS_ROUNDS rounds (default 2) of each load, about a
-- second each, and half as many rounds of the long block (3 s each).
-- TRUV_STRESS_HOGS=N runs N busy shell loops beside nginx for the spec's
-- duration (CPU pressure: the workers get preempted anywhere):
--   TRUV_STRESS_ROUNDS=50 TRUV_STRESS_HOGS=2 ctest -R stores_stress --output-on-failure
local openresty = require "spec.support.openresty"
local sandbox = require "spec.support.sandbox"
local socket = require "socket"
local hogs_mod = require "spec.support.hogs"

local ROUNDS = tonumber(os.getenv("TRUV_STRESS_ROUNDS") or "") or 2
local HOGS = tonumber(os.getenv("TRUV_STRESS_HOGS") or "") or 0
local LONG_ROUNDS = math.max(1, math.ceil(ROUNDS / 2))

local HTTP = [[
    lua_shared_dict truv_quota_real 16m;
    lua_shared_dict truv_dedupe_real 16m;]]

local SERVER = [[
        location = /stress/quota { content_by_lua_block { require("stress_runner").quota() } }
        location = /stress/usage { content_by_lua_block { require("stress_runner").usage() } }
        location = /stress/dedupe { content_by_lua_block { require("stress_runner").dedupe() } }
        location = /stress/hang { content_by_lua_block { require("stress_runner").hang() } }
        location = /stress/hung { content_by_lua_block { require("stress_runner").hung() } }
        location = /stress/after { content_by_lua_block { require("stress_runner").after() } }
]]

local function summary(rows)
  local bad = {}
  for _, r in ipairs(rows) do
    if not r.ok then bad[#bad + 1] = r.text end
  end
  return #bad, table.concat(bad, "; ")
end

describe("shared-dict stores under a worker that stalls inside their critical sections", function()
  local srv, hogs

  lazy_setup(function()
    hogs = hogs_mod.start(HOGS)
    srv = openresty.start{ conf = openresty.config{
      workers = 2, listen = "reuseport", http = HTTP, server = SERVER,
    } }
  end)

  lazy_teardown(function()
    if srv then srv:stop() end
    hogs_mod.stop(hogs)
  end)

  it("admit exactly the limit of one pair of keys, round after round", function()
    local LIMIT, REQS, N = 200, 12, 40   -- 480 attempts for 200 places
    local rows, stalls, pids = {}, 0, {}
    for round = 1, ROUNDS do
      local prefix = "sq" .. round .. ":"
      local reqs = {}
      for i = 1, REQS do
        reqs[i] = { "POST", string.format("/stress/quota?prefix=%s&n=%d&limit=%d&every=30&stall_ms=25",
                                          prefix, N, LIMIT) }
      end
      local got, failed, errs = 0, 0, {}
      for _, r in ipairs(srv:concurrent(reqs, 60)) do
        assert.equal(200, r.status, r.raw .. srv:error_log())
        got, failed = got + r.body.got, failed + r.body.failed
        stalls = stalls + r.body.stalls
        pids[r.body.pid] = true
        for _, e in ipairs(r.body.errors) do errs[#errs + 1] = e end
      end
      -- counted once the load is over
      local status, u = srv:request("GET", "/stress/usage?prefix=" .. prefix .. "&limit=" .. LIMIT)
      assert.equal(200, status, srv:error_log())
      rows[round] = {
        ok = got == LIMIT and u.a == LIMIT and u.b == LIMIT and failed == 0,
        text = string.format("round %d: %d admitted, counts %d/%d, %d failed %s", round, got, u.a,
                             u.b, failed, table.concat(errs, ",")),
      }
    end
    local n_bad, text = summary(rows)
    io.stderr:write(string.format("quota: %d rounds, %d stalls, %d wrong\n", ROUNDS, stalls, n_bad))
    assert.equal(0, n_bad, n_bad .. " of " .. ROUNDS .. " rounds wrong (limit " .. LIMIT .. "): " .. text)
    assert.is_true(stalls >= ROUNDS * 10, "the stalling worker stalled only " .. stalls .. " times")
    local n = 0
    for _ in pairs(pids) do n = n + 1 end
    assert.equal(2, n, "both workers served the load")
  end)

  it("admit exactly the limit when a worker blocks inside a section for longer than a lease", function()
    -- The worker that decides to admit blocks 2.5 s without yielding before
    -- writing, its locks held (the stall is in whichever worker writes:
    -- stalling worker 0 only, the round had no stall whenever worker 1
    -- admitted first, since a refusal writes nothing). A lock that was a lease (the earlier design:
    -- 2 s, stamped from the cached clock) ran out under it: the other worker
    -- took the lock, read the unwritten record and admitted too. A lock
    -- without a lease makes the other worker wait (lock_wait 20 s) and then
    -- refuse.
    local rows, pids, stalls = {}, {}, 0
    local function workers()
      local n = 0
      for _ in pairs(pids) do n = n + 1 end
      return n
    end
    -- with reuseport the kernel hashes each connection onto a worker: all 6
    -- of a round land on one worker once in 32 rounds, and such a round
    -- tests nothing across workers; up to 7 more rounds, until both served
    local round = 0
    repeat
      round = round + 1
      local prefix = "sl" .. round .. ":"
      local reqs = {}
      for i = 1, 6 do
        reqs[i] = { "POST", string.format("/stress/quota?prefix=%s&n=1&limit=1&every=1" ..
                                          "&kinds=write&stall_ms=2500&lock_wait=20" ..
                                          "&stall_in=any", prefix) }
      end
      local got, failed, errs = 0, 0, {}
      for _, r in ipairs(srv:concurrent(reqs, 120)) do
        assert.equal(200, r.status, r.raw .. srv:error_log())
        got, failed = got + r.body.got, failed + r.body.failed
        stalls = stalls + r.body.stalls
        pids[r.body.pid] = true
        for _, e in ipairs(r.body.errors) do errs[#errs + 1] = e end
      end
      local status, u = srv:request("GET", "/stress/usage?prefix=" .. prefix .. "&limit=1")
      assert.equal(200, status, srv:error_log())
      rows[round] = {
        ok = got == 1 and u.a == 1 and u.b == 1 and failed == 0,
        text = string.format("round %d: %d admitted, counts %d/%d, %d failed %s", round, got,
                             u.a, u.b, failed, table.concat(errs, ",")),
      }
    until round >= LONG_ROUNDS and (workers() == 2 or round >= LONG_ROUNDS + 7)
    local n_bad, text = summary(rows)
    io.stderr:write(string.format("long stalls: %d rounds, %d stalls, %d wrong\n", round,
                                  stalls, n_bad))
    assert.equal(0, n_bad, n_bad .. " of " .. round .. " rounds wrong (limit 1): " .. text)
    assert.is_true(stalls >= 1, "the blocking worker never blocked")
    assert.equal(2, workers(), "both workers served the load")
  end)

  it("see each webhook id first exactly once, round after round", function()
    local REQS, MS = 6, 300
    local rows, stalls = {}, 0
    for round = 1, ROUNDS do
      local prefix = "sd" .. round .. ":"
      local reqs = {}
      for i = 1, REQS do
        reqs[i] = { "POST", string.format("/stress/dedupe?prefix=%s&ms=%d&slot_ms=20" ..
                                          "&kinds=write&every=1&stall_ms=25", prefix, MS) }
      end
      local used, firsts, failed = {}, {}, 0
      for _, r in ipairs(srv:concurrent(reqs, 60)) do
        assert.equal(200, r.status, r.raw .. srv:error_log())
        failed = failed + r.body.failed
        stalls = stalls + r.body.stalls
        for _, id in ipairs(r.body.used) do used[id] = true end
        for _, id in ipairs(r.body.first) do firsts[id] = (firsts[id] or 0) + 1 end
      end
      local ids, twice, never = 0, 0, 0
      for id in pairs(used) do
        ids = ids + 1
        if (firsts[id] or 0) > 1 then twice = twice + 1 end
        if not firsts[id] then never = never + 1 end
      end
      rows[round] = {
        ok = twice == 0 and never == 0 and failed == 0,
        text = string.format("round %d: of %d ids, %d seen first twice or more, %d never; %d " ..
                             "failed", round, ids, twice, never, failed),
      }
    end
    local n_bad, text = summary(rows)
    io.stderr:write(string.format("dedupe: %d rounds, %d stalls, %d wrong\n", ROUNDS, stalls, n_bad))
    assert.equal(0, n_bad, n_bad .. " of " .. ROUNDS .. " rounds wrong: " .. text)
    assert.is_true(stalls >= ROUNDS * 3, "the stalling worker stalled only " .. stalls .. " times")
  end)

  it("logged no error", function()
    assert.same({}, srv:log_lines())
  end)
end)

describe("shared-dict quota store when a worker dies holding its locks", function()
  local srv

  lazy_setup(function()
    -- one listening socket shared by both workers: a busy worker accepts
    -- nothing, the other takes every connection
    srv = openresty.start{ conf = openresty.config{ workers = 2, http = HTTP, server = SERVER } }
  end)

  lazy_teardown(function()
    if srv then srv:stop() end
  end)

  it("lets the other workers reserve at once, and counts the dead reserve's written half", function()
    local prefix = "crash:"
    -- a reserve that stops before its second record write, then busy for 20 s
    local hang = socket.tcp()
    hang:settimeout(5)
    assert(hang:connect("127.0.0.1", srv.port))
    assert(hang:send("POST /stress/hang?prefix=" .. prefix .. "&limit=2&hang_at=2&hang_ms=20000" ..
                     " HTTP/1.0\r\nHost: x\r\nContent-Length: 0\r\n\r\n"))
    local victim = sandbox.wait_until(function()
      local status, r = srv:request("GET", "/stress/hung", nil, nil, 5)
      return status == 200 and r.pid ~= 0 and math.tointeger(r.pid)
    end, 10, 0.05)
    assert.is_number(victim, "no worker reached the hang point: " .. srv:error_log())
    local killed, how, code = os.execute(openresty.NOPRELOAD .. "kill -KILL " .. victim)
    assert.is_true(killed, "kill " .. victim .. ": " .. tostring(how) .. " " .. tostring(code))
    hang:close()

    -- the survivor (or the worker the master starts in its place) reserves
    -- the same pair: it finds the dead worker's locks and frees them
    local status, r = srv:request("POST", "/stress/after?prefix=" .. prefix .. "&limit=2", nil, nil, 10)
    assert.equal(200, status, srv:error_log())
    assert.are_not.equal(victim, r.pid)
    assert.is_false(r.err, tostring(r.err))
    assert.is_string(r.ticket)
    -- the dead reserve wrote one of its two records: that entry stays
    -- (counted, never released), the other key has only the new one
    local counts = { r.a, r.b }
    table.sort(counts)
    assert.same({ 1, 2 }, counts)
    -- freed because its holder is gone, not because some time ran out
    local freed = srv:log_lines({ "warn" })
    assert.equal(2, #freed, table.concat(freed, "\n"))
    for _, line in ipairs(freed) do
      assert.matches("freed a lock of the shared dictionary 'truv_stress_q' held by a " ..
                     "process that died %(" .. victim .. " ", line)
    end
  end)

  it("logged nothing worse than the killed worker's exit", function()
    assert.same({}, srv:log_lines(nil, { "exited on signal 9" }))
  end)
end)
