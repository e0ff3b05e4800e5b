-- The Redis stores when Redis fails, in Lua 5.4 over the core's blocking
-- connection: every failure refuses the operation with a typed error (kind
-- "internal", a store_* code, a message saying the store is unavailable and
-- never the password), nothing is double-counted, and the store recovers by
-- itself. Real servers for a kill, a stall past the timeout, a full
-- maxmemory, a read-only replica, authentication and eviction; a scripted
-- connection for the replies a test cannot provoke on demand (LOADING,
-- MASTERDOWN, BUSY, CLUSTERDOWN, MOVED).
local quota = require "truv.quota"
local dedupe = require "truv.dedupe"
local core = require "truv.core"
local redis_server = require "spec.support.redis_server"
local socket = require "socket"

local T0 = 1700000000

local function ns() return "truv:faults-" .. core.redis_ticket() end

describe("Redis stores when Redis fails", function()
  local srv

  lazy_setup(function() srv = redis_server.start() end)
  lazy_teardown(function() if srv then srv:stop() end end)

  local function unavailable(err, code)
    assert.is_table(err)
    assert.equal("internal", err.kind)
    assert.equal(code or "store_unavailable", err.code, err.message)
    assert.matches("store", err.message)
    assert.matches("unavailable", err.message)
  end

  it("refuses while the server is dead, and works again once it is back (the scripts sent again)",
     function()
    local q = assert(quota.redis{ url = srv:url(0), namespace = ns(), timeout_ms = 300 })
    local d = assert(dedupe.redis{ url = srv:url(0), namespace = ns(), timeout_ms = 300 })
    local k = quota.key("killed")
    assert.is_string(q:reserve({ k }, T0))
    srv:kill()
    local t, err = q:reserve({ k }, T0 + 1)
    assert.is_nil(t)
    unavailable(err)
    local first, derr = d:seen("wh-killed", T0, 60)
    assert.is_nil(first)
    unavailable(derr)
    assert.is_nil((q:usage(k, T0)))
    srv:restart()   -- empty: nothing persisted, no script cached
    assert.is_string(q:reserve({ k }, T0 + 2))
    assert.equal(1, (q:usage(k, T0 + 2)))
    assert.is_true(d:seen("wh-killed", T0, 60))
    q:close()
    d:close()
  end)

  it("refuses a reserve stalled past the timeout, keeps its late entry, and never reads its " ..
     "late reply as another's", function()
    local space = ns()
    local q = assert(quota.redis{ url = srv:url(0), namespace = space, timeout_ms = 200 })
    local k, other = quota.key("stalled"), quota.key("stalled-other")
    assert.equal(0, (q:usage(k, T0)))
    local sleeper = core.redis_connect{ host = "127.0.0.1", port = srv.port, timeout_ms = 3000 }
    -- DEBUG SLEEP blocks the whole server; sent without waiting for its reply
    local cmd = core.redis_format("DEBUG", "SLEEP", "1")
    local raw = assert(socket.connect("127.0.0.1", srv.port))
    assert(raw:send(cmd))
    socket.sleep(0.05)
    local t0 = socket.gettime()
    local t, err = q:reserve({ k }, T0)
    local waited = socket.gettime() - t0
    assert.is_nil(t)
    unavailable(err, "store_timeout")
    assert.is_true(waited >= 0.19 and waited < 0.9, "waited " .. waited)   -- Redis slept 1 s
    assert.equal("+OK\r\n", raw:receive(5))
    raw:close()
    -- the timed-out reserve ran when Redis woke (it reads that connection
    -- after this one's reply, maybe after our next command): it is counted,
    -- fewer refreshes, never more
    local used
    for _ = 1, 100 do
      used = q:usage(k, T0)
      if used ~= 0 then break end
      socket.sleep(0.01)
    end
    assert.equal(1, used)
    -- and the next command got its own reply (a fresh connection), not the stale {1}
    assert.equal(0, (q:usage(other, T0)))
    assert.is_string(q:reserve({ other }, T0))
    sleeper:close()
    q:close()
  end)

  it("forgets a webhook id whose seen timed out, so that Truv's retry is handled", function()
    local d = assert(dedupe.redis{ url = srv:url(0), namespace = ns(), timeout_ms = 200 })
    local raw = assert(socket.connect("127.0.0.1", srv.port))
    assert(raw:send(core.redis_format("DEBUG", "SLEEP", "0.5")))
    socket.sleep(0.05)
    local first, err = d:seen("wh-stalled", T0, 3600)
    assert.is_nil(first)
    unavailable(err, "store_timeout")
    assert.equal("+OK\r\n", raw:receive(5))
    raw:close()
    -- the seen ran late, and the forget sent after it (on a connection
    -- opened after the seen's) removed it
    assert.is_true(d:seen("wh-stalled", T0 + 1, 3600))
    d:close()
  end)

  it("refuses with store_full at maxmemory, writing nothing", function()
    local space = ns()
    local q = assert(quota.redis{ url = srv:url(0), namespace = space })
    local k = quota.key("full")
    assert.is_string(q:reserve({ k }, T0))
    assert.equal("OK", select(2, srv:call("CONFIG", "SET", "maxmemory", "1")))
    local t, err = q:reserve({ k }, T0 + 1)
    assert.is_nil(t)
    unavailable(err, "store_full")
    assert.matches("OOM", err.message)
    -- a read still answers, and shows nothing was written
    assert.equal(1, (q:usage(k, T0 + 1)))
    assert.equal("OK", select(2, srv:call("CONFIG", "SET", "maxmemory", "0")))
    assert.is_string(q:reserve({ k }, T0 + 2))
    assert.equal(2, (q:usage(k, T0 + 2)))
  end)

  it("refuses writes on a read-only replica with store_readonly", function()
    local replica = redis_server.start{ args = { "--replicaof", "127.0.0.1", tostring(srv.port) } }
    -- opening writes the namespace's policy: refused there already
    local q, err = quota.redis{ url = replica:url(0), namespace = ns() }
    -- a handle opened on a master that a failover then turned into a replica
    local solo = redis_server.start()
    local late = assert(quota.redis{ url = solo:url(0), namespace = ns() })
    assert.equal("OK", select(2, solo:call("REPLICAOF", "127.0.0.1", tostring(srv.port))))
    local t, lerr = late:reserve({ quota.key("replica") }, T0)
    local used = late:usage(quota.key("replica"), T0)   -- a read still answers
    late:close()
    solo:stop()
    replica:stop()
    assert.is_nil(q)
    unavailable(err, "store_readonly")
    assert.matches("READONLY", err.message)
    assert.is_nil(t)
    unavailable(lerr, "store_readonly")
    assert.equal(0, used)
  end)

  it("with replicas = 1, counts a reservation once a replica has it, else refuses to send",
     function()
    local replica = redis_server.start{ args = { "--replicaof", "127.0.0.1", tostring(srv.port) } }
    local sync = socket.gettime() + 10
    repeat
      local _, info = replica:call("INFO", "replication")
      local up = info and info:find("master_link_status:up", 1, true)
      if not up then socket.sleep(0.05) end
    until up or socket.gettime() > sync
    local space = ns()
    -- WAIT answers as soon as the replica acknowledged: a long bound costs
    -- nothing when it does, and keeps a loaded machine from failing it
    local q = assert(quota.redis{ url = srv:url(0), namespace = space, replicas = 1,
                                  replica_timeout_ms = 5000 })
    local k = quota.key("replicated")
    assert.is_string(q:reserve({ k }, T0))
    assert.equal(1, select(2, replica:call("ZCARD", "{" .. space .. "}:q:" .. k)))
    -- two replicas asked, one exists: refused within the wait, the entry counted
    local two = assert(quota.redis{ url = srv:url(0), namespace = space, replicas = 2,
                                    replica_timeout_ms = 100 })
    local t, err = two:reserve({ k }, T0 + 1)
    assert.is_nil(t)
    unavailable(err, "store_unreplicated")
    assert.matches("reached 1 of 2 replicas", err.message)
    assert.equal(2, (q:usage(k, T0 + 1)))
    -- the replica gone: nothing acknowledges
    replica:stop()
    local gone = assert(quota.redis{ url = srv:url(0), namespace = space, replicas = 1,
                                     replica_timeout_ms = 100 })
    t, err = gone:reserve({ quota.key("unreplicated") }, T0)
    gone:close()
    assert.is_nil(t)
    unavailable(err, "store_unreplicated")
    assert.has_error(function() quota.redis{ url = srv:url(0), replicas = -1 } end)
    q:close()
    two:close()
  end)

  it("refuses to open on a Redis that may evict keys", function()
    assert.equal("OK", select(2, srv:call("CONFIG", "SET", "maxmemory-policy", "volatile-lru")))
    local q, err = quota.redis{ url = srv:url(0), namespace = ns() }
    assert.equal("OK", select(2, srv:call("CONFIG", "SET", "maxmemory-policy", "noeviction")))
    assert.is_nil(q)
    assert.equal("invalid", err.kind)
    assert.equal("store_eviction", err.code)
    assert.matches("maxmemory%-policy volatile%-lru", err.message)
  end)

  it("refuses a second handle on a namespace with another policy", function()
    local space = ns()
    assert(quota.redis{ url = srv:url(0), namespace = space, limit = 3 }):close()
    local q, err = quota.redis{ url = srv:url(0), namespace = space, limit = 4 }
    assert.is_nil(q)
    assert.equal("store_policy", err.code)
    assert.matches("3/86400000", err.message)
  end)

  it("authenticates with a password or an ACL user, and never shows the password", function()
    local secret = "s3cr3t-" .. core.redis_ticket()
    local locked = redis_server.start{ password = secret }
    local ok, v = locked:call("ACL", "SETUSER", "truv", "on", ">" .. secret .. "u", "~*", "+@all")
    assert.is_true(ok, tostring(v))
    local good = assert(quota.redis{ url = locked:url(0), namespace = ns() })
    assert.is_string(good:reserve({ quota.key("auth") }, T0))
    local acl = assert(quota.redis{
      url = string.format("redis://truv:%s@127.0.0.1:%d/0", secret .. "u", locked.port),
      namespace = ns() })
    assert.is_string(acl:reserve({ quota.key("auth") }, T0))
    local bad, err = quota.redis{ url = string.format("redis://:wrong-%s@127.0.0.1:%d/0", secret,
                                                       locked.port), namespace = ns() }
    local none, nerr = quota.redis{ url = string.format("redis://127.0.0.1:%d/0", locked.port),
                                    namespace = ns() }
    good:close()
    acl:close()
    locked:stop()
    assert.is_nil(bad)
    assert.equal("store_auth", err.code)
    assert.is_nil(err.message:find(secret, 1, true))
    assert.is_nil(none)
    assert.equal("invalid", nerr.kind)   -- CONFIG refused before AUTH: says what to do
    assert.matches("NOAUTH", nerr.message)
    assert.is_nil(nerr.message:find(secret, 1, true))
  end)

  it("maps every unavailability reply to a typed refusal", function()
    local replies = {
      { "LOADING Redis is loading the dataset in memory", "store_loading" },
      { "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
        "store_unavailable" },
      { "BUSY Redis is busy running a script.", "store_unavailable" },
      { "CLUSTERDOWN The cluster is down", "store_unavailable" },
      { "MOVED 12991 127.0.0.1:7001", "store_moved" },
      { "TRYAGAIN Multiple keys request during rehashing of slot", "store_unavailable" },
    }
    for _, r in ipairs(replies) do
      -- a connection that opens fine (the policy check) and then answers r[1]
      local fake = { call = function(_, cmd)
        if cmd == "SET" then return true, false end
        return false, r[1]
      end }
      local q = assert(quota.redis{ conn = fake, namespace = ns(), assume_noeviction = true })
      local d = assert(dedupe.redis{ conn = fake, namespace = ns(), assume_noeviction = true })
      local t, err = q:reserve({ quota.key("fake") }, T0)
      assert.is_nil(t)
      unavailable(err, r[2])
      assert.truthy(err.message:find(r[1], 1, true))
      local first, derr = d:seen("wh", T0, 60)
      assert.is_nil(first)
      unavailable(derr, r[2])
    end
  end)
end)
