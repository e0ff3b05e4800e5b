-- The Redis stores' figures (bench/redis.sh runs it): a quota reserve
-- through truv.quota.redis against a bare EVALSHA of the same size on the
-- same connection, alternated call by call (medians and p99: a shared
-- machine swings block-wise means 2-3x); reserves per second with
-- CLIENTS concurrent processes; bytes per connection in Redis.
--   lua5.4 bench/redis.lua PORT N CLIENTS SECONDS
local quota = require "truv.quota"
local core = require "truv.core"

local port, n, clients, seconds = tonumber(arg[1]), tonumber(arg[2]) or 20000,
  tonumber(arg[3]) or 16, tonumber(arg[4]) or 3
local url = "redis://127.0.0.1:" .. port .. "/0"

local function pct(t, p)
  table.sort(t)
  return t[math.max(1, math.floor(#t * p + 0.5))]
end

if arg[5] == "worker" then
  -- one of CLIENTS processes: reserves on fresh keys for SECONDS, prints the count
  local store = assert(quota.redis{ url = url, namespace = "bench:" .. arg[6] })
  local deadline, count = core.monotonic() + seconds, 0
  while core.monotonic() < deadline and count < 10000000 do
    count = count + 1
    assert(store:reserve({ quota.key("w" .. count) }, 1700000000 + count))
  end
  print(count)
  return
end

local store = assert(quota.redis{ url = url, namespace = "bench:alt" })
local conn = store.conn
-- the bare script: `return 1` with the reserve's exact keys and arguments
local bare = "#!lua\nreturn 1\n"
local ok, bare_sha = conn:call("SCRIPT", "LOAD", bare)
assert(ok, bare_sha)
local keys = {}
for i = 1, n do keys[i] = quota.key("alt" .. i) end
local res_t, bare_t = {}, {}
local clock = core.monotonic
for i = 1, 1000 do assert(store:reserve({ keys[i] }, 1699990000 + i)) end   -- warm up
for i = 1, n do
  local k, now = keys[i], 1700000000 + i
  local t0 = clock()
  assert(store:reserve({ k }, now))
  local t1 = clock()
  local rok = conn:call("EVALSHA", bare_sha, 1, store.tag .. ":q:" .. k,
                        string.format("%.0f", now * 1000), 3, 86400000, "172860",
                        core.redis_ticket())
  local t2 = clock()
  assert(rok)
  res_t[i], bare_t[i] = (t1 - t0) * 1e6, (t2 - t1) * 1e6
end
local rm, bm = pct(res_t, 0.5), pct(bare_t, 0.5)
print(string.format("alternated, 1 connection, %d each: reserve median %.1f us p99 %.1f us; " ..
                    "bare EVALSHA median %.1f us p99 %.1f us; ratio of medians %.2f",
                    n, rm, pct(res_t, 0.99), bm, pct(bare_t, 0.99), rm / bm))
print(string.format("BARE_SHA %s KEY %s NOW %s TICKET %s", bare_sha, store.tag .. ":q:" .. keys[1],
                    "1700000001000", core.redis_ticket()))

-- bytes per connection: a log of 1 and of 3 entries, and its facts
local k3 = quota.key("memory-3")
for i = 1, 3 do assert(store:reserve({ k3 }, 1700000000 + i)) end
assert(store:note(k3, "dead", 1700000000, "login_error"))
local function usage(key) return select(2, conn:call("MEMORY", "USAGE", key, "SAMPLES", "0")) end
print(string.format("MEMORY USAGE: log of 1 entry %d B, of 3 entries %d B, facts %d B",
                    usage(store.tag .. ":q:" .. keys[1]), usage(store.tag .. ":q:" .. k3),
                    usage(store.tag .. ":f:" .. k3)))

-- CLIENTS processes at once, each its own connection and namespace
local procs = {}
for c = 1, clients do
  procs[c] = assert(io.popen(string.format("lua5.4 %s %d %d %d %d worker %d", arg[0], port, n,
                                           clients, seconds, c)))
end
local total = 0
for c = 1, clients do
  total = total + (tonumber(procs[c]:read("a")) or 0)
  procs[c]:close()
end
print(string.format("%d concurrent clients (processes) for %d s: %d reserves, %.0f reserves/s",
                    clients, seconds, total, total / seconds))
