-- The quota and de-duplication store contracts (spec/support/store_conformance.lua)
-- against the Redis stores in Lua 5.4 (the core's blocking connection), on a
-- redis-server of this spec's own; each store a namespace of its own, two
-- handles on one namespace for the sharing cases, TCP and a Unix socket.
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
