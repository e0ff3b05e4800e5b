-- The quota and de-duplication store contracts (spec/support/store_conformance.lua)
-- against the Redis stores in Lua 5.4 (the core's blocking connection), on a
-- redis-server of this spec's own; each store a namespace of its own, two
-- handles on one namespace for the sharing cases, TCP and a Unix socket.
-- And the key schema: every key of a namespace in one Redis Cluster slot.
local quota = require "truv.quota"
local dedupe = require "truv.dedupe"
local core = require "truv.core"
local conformance = require "spec.support.store_conformance"
local redis_server = require "spec.support.redis_server"

local srv = redis_server.start()
teardown(function() srv:stop() end)

local function fresh_ns() return "truv:spec-" .. core.redis_ticket() end

conformance.quota("Redis (TCP)", function(policy)
  return assert(quota.redis{ url = srv:url(0), namespace = fresh_ns(), limit = policy.limit,
                             window = policy.window })
end, {
  make_pair = function(policy)
    local ns = fresh_ns()
    return assert(quota.redis{ url = srv:url(0), namespace = ns, limit = policy.limit,
                               window = policy.window }),
           assert(quota.redis{ url = "unix://" .. srv.unix .. "?db=0", namespace = ns,
                               limit = policy.limit, window = policy.window })
  end,
})

conformance.dedupe("Redis (TCP)", function()
  return assert(dedupe.redis{ url = srv:url(1), namespace = fresh_ns() })
end, {
  make_pair = function()
    local ns = fresh_ns()
    return assert(dedupe.redis{ url = srv:url(1), namespace = ns }),
           assert(dedupe.redis{ url = "unix://" .. srv.unix .. "?db=1", namespace = ns })
  end,
})

describe("the Redis key schema", function()
  it("puts every key of one namespace in one hash slot (Redis Cluster's rule: the {tag})",
     function()
    local space = "truv:slot-" .. core.redis_ticket()
    local q = assert(quota.redis{ url = srv:url(6), namespace = space })
    local d = assert(dedupe.redis{ url = srv:url(6), namespace = space })
    local rl = assert(require("truv.ratelimit").redis{ url = srv:url(6), namespace = space })
    local a, b = quota.key("slot-a"), quota.key("slot-b")
    local t = assert(q:reserve({ a, b }, 1700000000))
    assert.is_true(q:record_limit(a, 1700000001))
    assert.is_true(q:record_count(b, { 1699999000 }, 1700000001))
    assert.is_true(q:note(a, "dead", 1700000000, "login_error"))
    assert.is_true(q:release({ a, b }, t))
    assert.is_true(d:seen("webhook-{with}-braces", 1700000000, 60))
    assert.is_true(d:last_update("order:x", 1700000000))
    assert.is_true((rl:acquire("batch")))
    assert.is_true((rl:cooldown(1)))
    -- every key the stores wrote, in that database
    local keys, cursor = {}, "0"
    local conn = core.redis_connect{ host = "127.0.0.1", port = srv.port, db = 6 }
    repeat
      local ok, r = conn:call("SCAN", cursor, "MATCH", "*" .. space .. "*", "COUNT", 1000)
      assert.is_true(ok, tostring(r))
      cursor = r[1]
      for _, k in ipairs(r[2]) do keys[#keys + 1] = k end
    until cursor == "0"
    conn:close()
    table.sort(keys)
    local tag = "{" .. space .. "}"
    local kinds = {}
    for _, k in ipairs(keys) do
      -- the slot is CRC16 of what lies between the first "{" and the next "}"
      assert.equal(tag, k:sub(1, #tag), k)
      assert.equal(space, k:match("^{([^}]*)}"), k)
      kinds[k:sub(#tag + 2):match("^(%a+)")] = true
    end
    assert.same({ q = true, f = true, qp = true, s = true, o = true, rl = true, cd = true }, kinds)
    for _, s in ipairs{ q, d, rl } do s:close() end
  end)
end)

describe("a Redis quota named by URL", function()
  it("is opened by truv.new under the client's namespace, or the URL's", function()
    local truv = require "truv"
    local c = assert(truv.new{ client_id = "client-abc", secret = "s", quota = srv:url(0) })
    assert.equal("redis", c.quota.kind)
    assert.equal("truv:client-abc", c.quota.namespace)
    assert.equal("redis", c:describe().quota.kind)
    c:close()
    c = assert(truv.new{ client_id = "client-abc", secret = "s",
                         quota = srv:url(0) .. "?namespace=team-a" })
    assert.equal("team-a", c.quota.namespace)
    c:close()
  end)
end)

describe("record_count on Redis", function()
  it("takes any number of Truv's refreshes (only the newest `limit` in the window count)",
     function()
    local q = assert(quota.redis{ url = srv:url(0), namespace = "truv:many-" .. core.redis_ticket() })
    local k, now, times = quota.key("many"), 1700000000, {}
    for i = 1, 5000 do times[i] = now - 200000 + i * 40 end   -- 5000 listed, some in the window
    assert.is_true(q:record_count(k, times, now))
    local used, next_free = q:usage(k, now)
    assert.equal(3, used)
    assert.equal(now - 200000 + 4998 * 40 + 86400, next_free)
    q:close()
  end)
end)
