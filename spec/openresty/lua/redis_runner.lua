-- Inside nginx: the store conformance suites against the Redis stores over
-- cosockets, and load that makes two workers reserve one pair of keys at
-- once. The Redis URL comes in each request's ?url= (the spec's own server).
local busted = require "busted"
local quota = require "truv.quota"
local dedupe = require "truv.dedupe"
local truv = require "truv"

local ngx = ngx
local _M = {}

local function respond(t)
  ngx.header["Content-Type"] = "application/json"
  ngx.say(truv.encode(t))
end

local function fresh_ns()
  return "truv:ngx-" .. require("truv.core").redis_ticket()
end

--- GET /redis/conformance?url=
function _M.conformance()
  local url = ngx.unescape_uri(ngx.var.arg_url)
  package.loaded["spec.support.store_conformance"] = nil
  local conformance = require "spec.support.store_conformance"
  local out = {}
  conformance.quota("Redis over cosockets", function(policy)
    return assert(quota.redis{ url = url, namespace = fresh_ns(), limit = policy.limit,
                               window = policy.window })
  end, {
    make_pair = function(policy)
      local ns = fresh_ns()
      return assert(quota.redis{ url = url, namespace = ns, limit = policy.limit,
                                 window = policy.window }),
             assert(quota.redis{ url = url, namespace = ns, limit = policy.limit,
                                 window = policy.window, pool_size = 4 })
    end,
  })
  out.quota_redis = busted.run()
  conformance.dedupe("Redis over cosockets", function()
    return assert(dedupe.redis{ url = url, namespace = fresh_ns() })
  end, {
    make_pair = function()
      local ns = fresh_ns()
      return assert(dedupe.redis{ url = url, namespace = ns }),
             assert(dedupe.redis{ url = url, namespace = ns })
    end,
  })
  out.dedupe_redis = busted.run()
  respond{ suites = out }
end

--- POST /redis/hammer?url=&ns=&n=: n light threads each reserve the pair
-- (a, b) once; { got, refused, failed, pid }.
function _M.hammer()
  local url = ngx.unescape_uri(ngx.var.arg_url)
  local ns, n = ngx.var.arg_ns, tonumber(ngx.var.arg_n) or 10
  local store = assert(quota.redis{ url = url, namespace = ns })
  local a, b = quota.key("hammer-a"), quota.key("hammer-b")
  local got, refused, failed, errs = 0, 0, 0, {}
  local threads = {}
  for i = 1, n do
    threads[i] = ngx.thread.spawn(function()
      local t, err = store:reserve({ a, b }, 1700000000)
      if t then got = got + 1
      elseif t == false then refused = refused + 1
      else failed = failed + 1; errs[#errs + 1] = tostring(err) end
    end)
  end
  for i = 1, n do ngx.thread.wait(threads[i]) end
  respond{ got = got, refused = refused, failed = failed, errors = errs, pid = ngx.worker.pid() }
end

--- GET /redis/stall?url=&ns=: a reserve while Redis sleeps (DEBUG SLEEP
-- 0.6 s on another connection) past the store's 200 ms timeout: { first =
-- its error, used = the key's usage once Redis woke, second = a reserve then,
-- connects = whether the timed-out connection was pooled }
function _M.stall()
  local url = ngx.unescape_uri(ngx.var.arg_url)
  local store = assert(quota.redis{ url = url, namespace = ngx.var.arg_ns, timeout_ms = 200 })
  local sleeper = assert(quota.redis{ url = url, namespace = ngx.var.arg_ns, timeout_ms = 5000 })
  local k = quota.key("stall")
  assert(store:usage(k, 1700000000))          -- checked and pooled before the stall
  local th = ngx.thread.spawn(function() return sleeper.conn:call("DEBUG", "SLEEP", "0.6") end)
  ngx.sleep(0.05)
  local t0 = ngx.now()
  local t, err = store:reserve({ k }, 1700000000)
  local waited = ngx.now() - t0
  ngx.thread.wait(th)
  -- the late reserve lands once Redis has woken and read its connection
  -- (maybe after this connection's next command): wait for it, bounded
  local used
  for _ = 1, 100 do
    used = store:usage(k, 1700000000)
    if used ~= 0 then break end
    ngx.sleep(0.01)
  end
  local t2 = store:reserve({ k }, 1700000001)
  respond{ first = t == nil and { kind = err.kind, code = err.code, message = err.message } or t,
           waited = waited, second = t2 and "ticket" or tostring(t2), used = used }
end

--- GET /redis/replicated?url=&ns=&replicas=&wait_ms=: a reserve that must reach that
-- many replicas (WAIT pipelined behind it on its connection): { ticket } or
-- { code, message }
function _M.replicated()
  local url = ngx.unescape_uri(ngx.var.arg_url)
  local store = assert(quota.redis{ url = url, namespace = ngx.var.arg_ns,
                                    replicas = tonumber(ngx.var.arg_replicas),
                                    replica_timeout_ms = tonumber(ngx.var.arg_wait_ms) })
  local t, err = store:reserve({ quota.key("replicated") }, 1700000000)
  if t then return respond{ ticket = t } end
  respond{ code = err.code, message = err.message }
end

return _M
