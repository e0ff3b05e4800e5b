-- The Redis stores inside a real nginx (two workers, cosockets, a keep-alive
-- pool): the conformance suites, two workers and many light threads
-- reserving one pair of keys at once (exactly the limit admitted), and a
-- Redis stalled past the read timeout (the refresh refused, the connection
-- closed rather than pooled, the next call answered right).
local openresty = require "spec.support.openresty"
local redis_server = require "spec.support.redis_server"
local core = require "truv.core"

describe("Redis stores in nginx", function()
  local srv, redis, replica

  lazy_setup(function()
    redis = redis_server.start()
    replica = redis_server.start{ args = { "--replicaof", "127.0.0.1", tostring(redis.port) } }
    srv = openresty.start{ conf = openresty.config{
      workers = 2,
      listen = "reuseport",
      http = "    lua_socket_log_errors off;",
      server = [[
        location = /redis/conformance { content_by_lua_block { require("redis_runner").conformance() } }
        location = /redis/hammer { content_by_lua_block { require("redis_runner").hammer() } }
        location = /redis/stall { content_by_lua_block { require("redis_runner").stall() } }
        location = /redis/replicated { content_by_lua_block { require("redis_runner").replicated() } }
      ]],
    } }
  end)

  lazy_teardown(function()
    if srv then srv:stop() end
    if replica then replica:stop() end
    if redis then redis:stop() end
  end)

  local function url(db)
    return (redis:url(db):gsub("[^%w]", function(c) return string.format("%%%02X", c:byte()) end))
  end

  it("pass the quota and dedupe store contracts over cosockets", function()
    local status, body = srv:request("GET", "/redis/conformance?url=" .. url(2), nil, nil, 60)
    assert.equal(200, status, srv:error_log())
    for name, at_least in pairs{ quota_redis = 27, dedupe_redis = 9 } do
      local r = body.suites[name]
      local msgs = {}
      for _, f in ipairs(r.failures) do msgs[#msgs + 1] = f.name .. "\n" .. f.error end
      assert.equal(0, r.failed, table.concat(msgs, "\n\n"))
      assert.is_true(r.passed >= at_least, name .. ": only " .. r.passed .. " ran")
    end
  end)

  it("admit exactly the limit when two workers' light threads reserve one pair at once", function()
    local ns = "truv:hammer-" .. core.redis_ticket()
    local reqs = {}
    for i = 1, 12 do reqs[i] = { "POST", "/redis/hammer?n=10&ns=" .. ns .. "&url=" .. url(3) } end
    local got, refused = 0, 0
    for _, r in ipairs(srv:concurrent(reqs, 60)) do
      assert.equal(200, r.status, r.raw)
      assert.equal(0, r.body.failed, table.concat(r.body.errors or {}, "\n"))
      got, refused = got + r.body.got, refused + r.body.refused
    end
    assert.equal(3, got)
    assert.equal(117, refused)
  end)

  it("refuse a reserve when Redis stalls past the timeout, and never reuse that connection",
     function()
    local ns = "truv:stall-" .. core.redis_ticket()
    local status, body = srv:request("GET", "/redis/stall?ns=" .. ns .. "&url=" .. url(0))
    assert.equal(200, status, srv:error_log())
    assert.equal("internal", body.first.kind)
    assert.equal("store_timeout", body.first.code, body.first.message)
    assert.matches("quota store", body.first.message)
    assert.is_true(body.waited >= 0.19 and body.waited < 0.55, "waited " .. body.waited)
    -- the timed-out reserve ran when Redis woke: it stays counted (fewer
    -- refreshes, never more), and the next call gets its own answer
    assert.equal(1, body.used)
    assert.equal("ticket", body.second)
  end)

  it("counts a reservation a replica acknowledged (WAIT pipelined on its pooled connection)",
     function()
    local deadline = require("socket").gettime() + 10
    repeat
      local _, info = replica:call("INFO", "replication")
      local up = info and info:find("master_link_status:up", 1, true)
      if not up then require("socket").sleep(0.05) end
    until up or require("socket").gettime() > deadline
    local ns = "truv:repl-" .. core.redis_ticket()
    -- WAIT answers as soon as the replica acknowledged: a long bound costs
    -- nothing when it does (a loaded machine took over 200 ms once)
    local status, body = srv:request("GET", "/redis/replicated?replicas=1&wait_ms=5000&ns=" ..
                                     ns .. "&url=" .. url(0))
    assert.equal(200, status, srv:error_log())
    assert.is_string(body.ticket, body.message)
    status, body = srv:request("GET", "/redis/replicated?replicas=2&wait_ms=100&ns=" .. ns ..
                               "&url=" .. url(0))
    assert.equal(200, status)
    assert.equal("store_unreplicated", body.code)
    assert.matches("reached 1 of 2 replicas within 100 ms", body.message)
  end)
end)
