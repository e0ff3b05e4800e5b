-- Redis Cluster on loopback: three masters on ports probed at run time
-- (their bus ports too: --cluster-port), formed with redis-cli --cluster
-- create. The quota and dedupe contracts pass against it through one node
-- (each store's namespace is one slot, wherever it lives: MOVED is followed
-- to the node that owns it), and a reserve across two connections of one
-- client is one slot, so it runs, never CROSSSLOT.
local quota = require "truv.quota"
local dedupe = require "truv.dedupe"
local core = require "truv.core"
local socket = require "socket"
local conformance = require "spec.support.store_conformance"
local redis_server = require "spec.support.redis_server"

local function probe()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, p = s:getsockname()
  s:close()
  return tonumber(p)
end

local nodes = {}
for i = 1, 3 do
  nodes[i] = redis_server.start{ args = { "--cluster-enabled", "yes",
    "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000",
    "--cluster-port", tostring(probe()) } }
end
teardown(function() for _, n in ipairs(nodes) do n:stop() end end)

local addrs = {}
for i, n in ipairs(nodes) do addrs[i] = "127.0.0.1:" .. n.port end
assert(os.execute("LD_PRELOAD= redis-cli --cluster create " .. table.concat(addrs, " ") ..
                  " --cluster-replicas 0 --cluster-yes >/dev/null 2>&1"),
       "redis-cli --cluster create failed")
local deadline = socket.gettime() + 20
local ready
repeat
  ready = true
  for _, n in ipairs(nodes) do
    local ok, info = n:call("CLUSTER", "INFO")
    if not (ok and info:find("cluster_state:ok", 1, true)) then ready = false end
  end
  if not ready then socket.sleep(0.05) end
until ready or socket.gettime() > deadline
assert(ready, "the cluster did not reach cluster_state:ok within 20 s")

local url = "redis://" .. addrs[1] .. "/0"
local function fresh_ns() return "truv:cluster-" .. core.redis_ticket() end

conformance.quota("Redis Cluster (through one node)", function(policy)
  return assert(quota.redis{ url = url, namespace = fresh_ns(), limit = policy.limit,
                             window = policy.window })
end, {
  make_pair = function(policy)
    local ns = fresh_ns()
    return assert(quota.redis{ url = url, namespace = ns, limit = policy.limit,
                               window = policy.window }),
           assert(quota.redis{ url = "redis://" .. addrs[3] .. "/0", namespace = ns,
                               limit = policy.limit, window = policy.window })
  end,
})

conformance.dedupe("Redis Cluster (through one node)", function()
  return assert(dedupe.redis{ url = url, namespace = fresh_ns() })
end)

describe("Redis Cluster", function()
  it("runs a reserve across connections on the slot's owner, whichever node was named", function()
    local moved = 0
    for i = 1, 12 do
      local ns = fresh_ns()
      local q = assert(quota.redis{ url = url, namespace = ns })
      assert.is_string(q:reserve({ quota.key("c-a" .. i), quota.key("c-b" .. i) }, 1700000000))
      -- the handle follows the slot: it talks to the node that owns it
      local ok, slot = nodes[1]:call("CLUSTER", "KEYSLOT", "{" .. ns .. "}:q:x")
      assert.is_true(ok)
      local owner   -- the node holding the slot's keys
      for j, n in ipairs(nodes) do
        local _, count = n:call("CLUSTER", "COUNTKEYSINSLOT", slot)
        if count and count > 0 then owner = addrs[j] end
      end
      assert.equal(owner, q.endpoint_name)
      if q.endpoint_name ~= addrs[1] then moved = moved + 1 end
      q:close()
    end
    -- twelve namespaces over three nodes: some live elsewhere than the named node
    assert.is_true(moved > 0, "no namespace was on another node")
  end)
end)
