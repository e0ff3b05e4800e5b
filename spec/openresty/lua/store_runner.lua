-- Inside nginx: the store conformance suites (spec/support/
-- store_conformance.lua, unchanged, through the busted shim) against the
-- shared-dictionary stores and, as a check of the shim, the C memory
-- stores; and load loops that make two workers hit one store at once.
local busted = require "busted"
local shdict = require "truv.store.shdict"
local quota = require "truv.quota"
local dedupe = require "truv.dedupe"
local truv = require "truv"

local ngx = ngx
local _M = {}

local DICT = "truv_test"          -- quota stores
local DEDUPE_DICT = "truv_test_d" -- de-duplication stores (a dictionary of their own)
local serial = 0

local function fresh_prefix(kind)
  serial = serial + 1
  return string.format("c%d-%s-%d:", ngx.worker.pid(), kind, serial)
end

local function respond(t)
  ngx.header["Content-Type"] = "application/json"
  ngx.say(truv.encode(t))
end

--- GET /conformance: every suite, { suites = { name = { passed, failed, names, failures } } }
function _M.conformance()
  -- a fresh require each time: the module records blocks through the shim
  package.loaded["spec.support.store_conformance"] = nil
  local conformance = require "spec.support.store_conformance"
  local out = {}

  conformance.quota("nginx shared dict", function(policy)
    local opts = { prefix = fresh_prefix("q") }
    for k, v in pairs(policy or {}) do opts[k] = v end
    return shdict.quota(DICT, opts)
  end, {
    make_pair = function(policy)
      local opts = { prefix = fresh_prefix("qp") }
      for k, v in pairs(policy or {}) do opts[k] = v end
      return shdict.quota(DICT, opts), shdict.quota(DICT, opts)
    end,
  })
  out.quota_shdict = busted.run()

  conformance.dedupe("nginx shared dict", function()
    return shdict.dedupe(DEDUPE_DICT, { prefix = fresh_prefix("d") })
  end, {
    make_pair = function()
      local prefix = fresh_prefix("dp")
      return shdict.dedupe(DEDUPE_DICT, { prefix = prefix }),
             shdict.dedupe(DEDUPE_DICT, { prefix = prefix })
    end,
  })
  out.dedupe_shdict = busted.run()

  conformance.quota("C memory (LuaJIT)", function(policy) return quota.memory(policy) end)
  out.quota_memory = busted.run()
  conformance.dedupe("C memory (LuaJIT)", function() return dedupe.memory() end)
  out.dedupe_memory = busted.run()

  -- the shim itself must report a failing block as failed
  busted.describe("shim", function()
    busted.it("fails", function() require("luassert").equal(1, 2) end)
  end)
  out.shim_self_check = busted.run()
  respond{ suites = out }
end

--- GET /options: what each misuse of the constructors raises, { case = message }
-- ("accepted" when nothing was raised). Each call is made from this file, so
-- a message must point here, at the caller, not inside the store module.
function _M.options()
  local function try(make, opts, dict)
    local ok, err = pcall(function()
      local store = make(dict, opts)   -- not a tail call: the caller's frame stays
      return store
    end)
    return ok and "accepted" or tostring(err)
  end
  local function q(opts, dict) return try(shdict.quota, opts, dict or DICT) end
  local function d(opts, dict) return try(shdict.dedupe, opts, dict or DEDUPE_DICT) end
  respond{
    quota_not_a_table = q("limit=3"),
    quota_unknown = q({ limits = 3 }),
    quota_prefix = q({ prefix = 1 }),
    quota_limit = q({ limit = 0, prefix = fresh_prefix("o") }),
    quota_lock_wait = q({ lock_wait = 0, prefix = fresh_prefix("o") }),
    quota_good = q({ limit = 2, window = 60, lock_wait = 0.5, prefix = fresh_prefix("o") }),
    quota_in_dedupe_dict = q({ prefix = fresh_prefix("o") }, DEDUPE_DICT),
    dedupe_not_a_table = d(1),
    dedupe_unknown = d({ limit = 3 }),
    dedupe_prefix = d({ prefix = {} }),
    dedupe_lock_wait = d({ lock_wait = "3" }),
    dedupe_good = d({ prefix = fresh_prefix("o"), lock_wait = 10 }),
    dedupe_in_quota_dict = d({ prefix = fresh_prefix("o") }, DICT),
  }
end

--- POST /hammer/quota?prefix=P&n=N: N reserves of one pair of keys in a
-- store of limit 1000; answers how many got a ticket.
function _M.hammer_quota()
  local args = ngx.req.get_uri_args()
  local store = shdict.quota(DICT, { prefix = args.prefix, limit = 1000, window = 86400 })
  local keys = { quota.key("hammer-a"), quota.key("hammer-b") }
  local got, refused, failed = 0, 0, 0
  for _ = 1, tonumber(args.n) do
    local t = store:reserve(keys, ngx.now())
    if t then got = got + 1 elseif t == false then refused = refused + 1 else failed = failed + 1 end
  end
  respond{ got = got, refused = refused, failed = failed, pid = ngx.worker.pid() }
end

--- GET /hammer/usage?prefix=P: the pair's counts, { a, b } (read once the
-- load is over: two reads during it are two moments).
function _M.hammer_usage()
  local args = ngx.req.get_uri_args()
  local store = shdict.quota(DICT, { prefix = args.prefix, limit = 1000, window = 86400 })
  local keys = { quota.key("hammer-a"), quota.key("hammer-b") }
  respond{ a = (store:usage(keys[1], ngx.now())), b = (store:usage(keys[2], ngx.now())) }
end

--- POST /threads?kind=memory|shdict&prefix=P: 40 light threads of this
-- worker share one quota store (limit 300) and reserve one pair of keys 20
-- times each, yielding (ngx.sleep(0)) between calls and giving some back
-- in the first half; { got = net reservations held, a, b = the counts,
-- failed, pid }.
function _M.threads()
  local args = ngx.req.get_uri_args()
  local store
  if args.kind == "memory" then
    store = quota.memory{ limit = 300 }
  else
    store = shdict.quota(DICT, { prefix = args.prefix, limit = 300, window = 86400 })
  end
  local keys = { quota.key("threads-a"), quota.key("threads-b") }
  local got, failed = 0, 0
  local threads = {}
  for i = 1, 40 do
    threads[i] = ngx.thread.spawn(function()
      for j = 1, 20 do
        local t = store:reserve(keys, ngx.now())
        if t then got = got + 1 elseif t == nil then failed = failed + 1 end
        ngx.sleep(0)
        if t and j % 2 == 0 and j <= 10 then
          if store:release(keys, t) then got = got - 1 else failed = failed + 1 end
        end
        ngx.sleep(0)
      end
    end)
  end
  for i = 1, #threads do assert(ngx.thread.wait(threads[i])) end
  respond{ got = got, failed = failed, a = (store:usage(keys[1], ngx.now())),
           b = (store:usage(keys[2], ngx.now())), pid = ngx.worker.pid() }
end

--- POST /hammer/dedupe?prefix=P&n=N: seen() of ids 1..N; answers how many
-- were first here.
function _M.hammer_dedupe()
  local args = ngx.req.get_uri_args()
  local store = shdict.dedupe(DEDUPE_DICT, { prefix = args.prefix })
  local first, dup, failed = 0, 0, 0
  for i = 1, tonumber(args.n) do
    local r = store:seen("wh-" .. i, ngx.now(), 3600)
    if r then first = first + 1 elseif r == false then dup = dup + 1 else failed = failed + 1 end
  end
  respond{ first = first, duplicate = dup, failed = failed, pid = ngx.worker.pid() }
end

--- GET /footprint: what remembered webhooks cost in a dictionary of their
-- own ("truv_test_small", 1 MB), and what happens when it is full:
-- { ids = webhook ids (Truv's 32-hex shape) and as many objects written
-- before the first eviction, per_webhook = its capacity / ids, evicted =
-- evictions counted then; then 5 000 more of each: failed_after = calls
-- that did not record, evicted_after = evictions counted by then }.
function _M.footprint()
  local counters = require("truv.counters").memory()
  local name = "truv_test_small"
  local dict = ngx.shared[name]
  local store = shdict.dedupe(name, { prefix = "f:", counters = counters })
  local function id(i) return string.format("%08x%08x%08x%08x", i, i * 7, i * 13, 0xfeed) end
  local now, i = ngx.now(), 0
  while not counters:snapshot()["evicted:" .. name] and i < 200000 do
    i = i + 1
    assert(store:seen(id(i), now, 7 * 86400) == true)
    assert(store:last_update("order-status-updated:" .. id(i), now) == true)
  end
  local at_full = counters:snapshot()["evicted:" .. name] or 0
  -- a full dictionary goes on: room is made (and counted), never refused
  local failed = 0
  for j = i + 1, i + 5000 do
    if store:seen(id(j), now, 7 * 86400) ~= true then failed = failed + 1 end
    if store:last_update("order-status-updated:" .. id(j), now) ~= true then
      failed = failed + 1
    end
  end
  respond{ ids = i - 1, per_webhook = dict:capacity() / (i - 1), evicted = at_full,
           evicted_after = counters:snapshot()["evicted:" .. name], failed_after = failed }
end

--- GET /legacy: records written by the one-record-per-id layout (kept by a
-- reload across an upgrade) still count: { seen_again, older_refused,
-- forgotten_seen, newer_taken }.
function _M.legacy()
  local dict = ngx.shared[DEDUPE_DICT]
  local store = shdict.dedupe(DEDUPE_DICT, { prefix = "lg:" })
  local now = ngx.now()
  local at = math.floor(now * 1000 + 0.5)
  dict:set("lg:s:" .. "0123456789abcdef0123456789abcdef", at + 3600000, 3600)
  dict:set("lg:o:" .. "order-status-updated:abc", at, 3600)
  local seen_again = store:seen("0123456789abcdef0123456789abcdef", now, 7 * 86400)
  local older_refused = store:last_update("order-status-updated:abc", now - 1)
  local newer_taken = store:last_update("order-status-updated:abc", now + 1)
  assert(store:forget("0123456789abcdef0123456789abcdef"))
  respond{ seen_again = seen_again, older_refused = older_refused == false,
           forgotten_seen = store:seen("0123456789abcdef0123456789abcdef", now, 7 * 86400),
           newer_taken = newer_taken }
end

return _M
