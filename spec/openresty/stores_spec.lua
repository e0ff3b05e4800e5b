-- The shared-dictionary stores inside a real nginx (two workers): the same
-- conformance suites as the C stores (spec/support/store_conformance.lua,
-- run in nginx through a busted shim), and two workers hammering one store
-- at once without a lost update or a double admission.
local openresty = require "spec.support.openresty"

describe("shared-dict stores in nginx", function()
  local srv

  lazy_setup(function()
    srv = openresty.start{ conf = openresty.config{
      workers = 2,
      listen = "reuseport",
      http = "    lua_shared_dict truv_test 32m;\n    lua_shared_dict truv_test_d 32m;\n" ..
             "    lua_shared_dict truv_test_small 1m;",
      server = [[
        location = /conformance { content_by_lua_block { require("store_runner").conformance() } }
        location = /legacy { content_by_lua_block { require("store_runner").legacy() } }
        location = /footprint { content_by_lua_block { require("store_runner").footprint() } }
        location = /options { content_by_lua_block { require("store_runner").options() } }
        location = /hammer/quota { content_by_lua_block { require("store_runner").hammer_quota() } }
        location = /hammer/usage { content_by_lua_block { require("store_runner").hammer_usage() } }
        location = /threads { content_by_lua_block { require("store_runner").threads() } }
        location = /hammer/dedupe { content_by_lua_block { require("store_runner").hammer_dedupe() } }
      ]],
    } }
  end)

  lazy_teardown(function()
    if srv then srv:stop() end
  end)

  local function suites()
    local status, body = srv:request("GET", "/conformance", nil, nil, 60)
    assert.equal(200, status, srv:error_log())
    return body.suites
  end

  local result
  local function run_once()
    result = result or suites()
    return result
  end

  local function passes(name, at_least)
    local r = run_once()[name]
    assert.is_table(r, name)
    local msgs = {}
    for _, f in ipairs(r.failures) do msgs[#msgs + 1] = f.name .. "\n" .. f.error end
    assert.equal(0, r.failed, table.concat(msgs, "\n\n"))
    assert.is_true(r.passed >= at_least, name .. ": only " .. r.passed .. " tests ran")
  end

  it("the quota store passes the quota store contract, the sharing and facts tests included",
     function()
    passes("quota_shdict", 26)
    local shared, facts, shared_facts, counted = false, false, false, false
    for _, n in ipairs(run_once().quota_shdict.names) do
      if n:find("shares one log", 1, true) then shared = true end
      if n:find("record_count keeps Truv's count", 1, true) then counted = true end
      if n:find("keeps connection facts", 1, true) then facts = true end
      if n:find("shares connection facts", 1, true) then shared_facts = true end
    end
    assert.is_true(shared)
    assert.is_true(facts)
    assert.is_true(shared_facts)
    assert.is_true(counted)
  end)

  it("the de-duplication store passes the dedupe store contract", function()
    passes("dedupe_shdict", 9)
  end)

  it("the C memory stores pass the same suites in LuaJIT (the shim runs them faithfully)", function()
    passes("quota_memory", 24)
    passes("dedupe_memory", 8)
    local check = run_once().shim_self_check
    assert.equal(1, check.failed)
    assert.equal(0, check.passed)
  end)

  it("keeps a webhook and its object in under 150 bytes, and counts and logs what it evicts",
     function()
    local status, r = srv:request("GET", "/footprint", nil, nil, 60)
    assert.equal(200, status, srv:error_log())
    -- a node of nginx's is 68 bytes before its key and value, in a slab of
    -- 128: entries of 26 bytes packed in buckets cost a fraction of that
    assert.is_true(r.per_webhook <= 150, "bytes per webhook and object: " .. r.per_webhook)
    assert.is_true(r.evicted >= 1)
    -- past full, every webhook is still recorded: room is made, and counted
    assert.equal(0, r.failed_after)
    assert.is_true(r.evicted_after > r.evicted)
    assert.matches("the shared dictionary 'truv_test_small' is full: ", srv:error_log(), nil, true)
  end)

  it("still reads the records of the one-record-per-id layout that a reload kept", function()
    local status, r = srv:request("GET", "/legacy")
    assert.equal(200, status, srv:error_log())
    assert.is_false(r.seen_again)       -- seen before the upgrade: a duplicate
    assert.is_true(r.older_refused)     -- an older update than the one kept: stale
    assert.is_true(r.newer_taken)
    assert.is_true(r.forgotten_seen)    -- forget removes the old record too
  end)

  it("refuses misused constructor options with a message that points at the caller", function()
    local status, r = srv:request("GET", "/options")
    assert.equal(200, status, srv:error_log())
    assert.equal("accepted", r.quota_good)
    assert.equal("accepted", r.dedupe_good)
    local expected = {
      quota_not_a_table = "bad argument #2 to 'quota' (table expected, got string)",
      quota_unknown = "bad argument #2 to 'quota' (unknown option 'limits')",
      quota_prefix = "bad argument #2 to 'quota' ('prefix' must be a string)",
      quota_limit = "bad argument #2 to 'quota' ('limit' must be an integer from 1 to 1000)",
      quota_lock_wait = "bad argument #2 to 'quota' ('lock_wait' must be a number of seconds > 0)",
      dedupe_not_a_table = "bad argument #2 to 'dedupe' (table expected, got number)",
      dedupe_unknown = "bad argument #2 to 'dedupe' (unknown option 'limit')",
      dedupe_prefix = "bad argument #2 to 'dedupe' ('prefix' must be a string)",
      dedupe_lock_wait = "bad argument #2 to 'dedupe' ('lock_wait' must be a number of " ..
                         "seconds > 0)",
      -- a de-duplication store may evict entries: never in a quota store's dictionary
      quota_in_dedupe_dict = "quota: the shared dictionary 'truv_test_d' holds a dedupe store",
      dedupe_in_quota_dict = "dedupe: the shared dictionary 'truv_test' holds a quota store",
    }
    for case, msg in pairs(expected) do
      assert.matches("store_runner.lua:%d+: ", r[case], nil, false, case .. ": " .. r[case])
      assert.truthy(r[case]:find(msg, 1, true), case .. ": " .. r[case])
    end
  end)

  it("admits exactly the limit when both workers reserve one pair of keys at once", function()
    local reqs = {}
    for i = 1, 24 do reqs[i] = { "POST", "/hammer/quota?prefix=hq1:&n=100" } end
    local got, pids = 0, {}
    for _, r in ipairs(srv:concurrent(reqs, 60)) do
      assert.equal(200, r.status, r.raw)
      assert.equal(0, r.body.failed)
      got = got + r.body.got
      pids[r.body.pid] = true
    end
    assert.equal(1000, got)
    -- all or nothing across the two keys, counted once the load is over
    local status, u = srv:request("GET", "/hammer/usage?prefix=hq1:")
    assert.equal(200, status, srv:error_log())
    assert.equal(1000, u.a)
    assert.equal(1000, u.b)
    local n = 0
    for _ in pairs(pids) do n = n + 1 end
    assert.equal(2, n, "both workers served the load")
  end)

  it("admits exactly the limit when the light threads of one worker share a store", function()
    for _, kind in ipairs{ "memory", "shdict" } do
      local status, r = srv:request("POST", "/threads?kind=" .. kind .. "&prefix=th1:", nil, nil, 60)
      assert.equal(200, status, srv:error_log())
      assert.equal(0, r.failed, kind)
      assert.equal(300, r.got, kind)
      assert.equal(300, r.a, kind)
      assert.equal(300, r.b, kind)
    end
  end)

  it("sees each webhook id first exactly once when both workers check it at once", function()
    local reqs = {}
    for i = 1, 16 do reqs[i] = { "POST", "/hammer/dedupe?prefix=hd1:&n=300" } end
    local first, dup = 0, 0
    for _, r in ipairs(srv:concurrent(reqs, 60)) do
      assert.equal(200, r.status, r.raw)
      assert.equal(0, r.body.failed)
      first, dup = first + r.body.first, dup + r.body.duplicate
    end
    assert.equal(300, first)
    assert.equal(300 * 15, dup)
  end)

  it("logged no error", function()
    assert.same({}, srv:log_lines())
  end)
end)
