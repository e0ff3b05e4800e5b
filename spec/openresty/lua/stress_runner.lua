-- Inside nginx: the shared-dictionary stores under an adversary. The
-- stores open "truv_stress_q" and "truv_stress_d", which this module puts
-- into ngx.shared as stand-ins for the real dictionaries "truv_quota_real"
-- and "truv_dedupe_real": every call is passed on, and in worker 0 (in any
-- worker with stall_in=any), when the request asks for it, some calls made
-- inside a store's critical section busy-wait first (no yield, no ngx.update_time: the worker's cached clock
-- goes stale, as it does in a worker busy with other work):
--   read   after the get of a record (the section decides on what it read)
--   write  before the write of a record (the decision is made)
--   lock   before the add of a lock (the lock is stamped with a stale clock)
-- Records and locks are told apart by the layout documented at the top of
-- lua/truv/store/shdict/ ("<prefix>q:", "<prefix>s:", "<prefix>l").
local shdict = require "truv.store.shdict"
local quota = require "truv.quota"
local truv = require "truv"

local ngx = ngx
local clock = os.clock
local _M = {}

local QUOTA_DICT, DEDUPE_DICT = "truv_stress_q", "truv_stress_d"

local function respond(t)
  ngx.header["Content-Type"] = "application/json"
  ngx.say(truv.encode(t))
end

-- Busy-waits `ms` milliseconds of this worker's CPU time.
local function busy(ms)
  local t = clock() + ms / 1000
  while clock() < t do end
end

-- What the current request asked for (ngx.ctx: requests of one worker
-- interleave while a store sleeps waiting for a lock).
local function plan()
  return ngx.ctx.stress
end

local function classify(prefix, key)
  if type(key) ~= "string" or key:sub(1, #prefix) ~= prefix then return nil end
  local c = key:sub(#prefix + 1, #prefix + 2)
  if c == "q:" or c == "s:" then return "record" end
  if c:sub(1, 1) == "l" then return "lock" end
  return nil
end

-- Called at each stall point: stalls at every `every`-th point of each kind
-- met by the request (of the kinds named in `kinds`, all by default), or
-- hangs when the plan says so.
local function point(p, name)
  if p.hang_at and name == "write" then
    p.writes = (p.writes or 0) + 1
    if p.writes == p.hang_at then
      -- half-way through a multi-key write, holding its locks: tell the
      -- spec who we are, then wait (bounded) to be killed
      ngx.shared[p.real]:set("hang:pid", ngx.worker.pid())
      busy(p.hang_ms)
    end
    return
  end
  if not p.every or (p.kinds and not p.kinds:find(name, 1, true)) then return end
  local n = (p.seen[name] or 0) + 1
  p.seen[name] = n
  if n % p.every == 0 then
    p.stalls = p.stalls + 1
    busy(p.stall_ms)
  end
end

local function stand_in(real_name)
  local real = ngx.shared[real_name]
  return setmetatable({}, { __index = function(t, method)
    local f = function(_, key, ...)
      local p = plan()
      local kind = p and classify(p.prefix, key)
      if not kind then return real[method](real, key, ...) end
      if kind == "record" and method == "get" then
        local v, flags = real:get(key)
        point(p, "read")
        return v, flags
      end
      if kind == "record" and (method == "set" or method == "safe_set") then
        point(p, "write")
      elseif kind == "lock" and (method == "add" or method == "safe_add") then
        point(p, "lock")
      end
      return real[method](real, key, ...)
    end
    rawset(t, method, f)
    return f
  end })
end

local function install()
  if not rawget(ngx.shared, QUOTA_DICT) then
    ngx.shared[QUOTA_DICT] = stand_in("truv_quota_real")
    ngx.shared[DEDUPE_DICT] = stand_in("truv_dedupe_real")
  end
end

local function args_plan(args, real)
  local stall_here = (args.stall_in == "any" or ngx.worker.id() == 0) and tonumber(args.every)
  ngx.ctx.stress = {
    prefix = args.prefix, real = real, every = stall_here or nil,
    stall_ms = tonumber(args.stall_ms) or 30, seen = {}, stalls = 0,
    kinds = args.kinds, hang_at = tonumber(args.hang_at), hang_ms = tonumber(args.hang_ms),
  }
  return ngx.ctx.stress
end

local KEYS = { quota.key("stress-a"), quota.key("stress-b") }

local function quota_store(args)
  return shdict.quota(QUOTA_DICT, { prefix = args.prefix, limit = tonumber(args.limit),
                                    window = 86400, lock_wait = tonumber(args.lock_wait) })
end

--- POST /stress/quota?prefix=P&n=N&limit=L&every=K&stall_ms=MS[&kinds=K]
-- [&lock_wait=S]: N reserves of one pair of keys; { got, refused, failed,
-- errors, stalls, pid }.
function _M.quota()
  install()
  local args = ngx.req.get_uri_args()
  local p = args_plan(args, "truv_quota_real")
  local store = quota_store(args)
  local got, refused, failed, errs = 0, 0, 0, {}
  for _ = 1, tonumber(args.n) do
    local t, err = store:reserve(KEYS, ngx.now())
    if t then
      got = got + 1
    elseif t == false then
      refused = refused + 1
    else
      failed = failed + 1
      errs[tostring(err)] = true
    end
  end
  local list = {}
  for e in pairs(errs) do list[#list + 1] = e end
  respond{ got = got, refused = refused, failed = failed, errors = list, stalls = p.stalls,
           pid = ngx.worker.pid() }
end

--- GET /stress/usage?prefix=P&limit=L: { a, b } (the pair's counts).
function _M.usage()
  install()
  local args = ngx.req.get_uri_args()
  local store = quota_store(args)
  respond{ a = (store:usage(KEYS[1], ngx.now())), b = (store:usage(KEYS[2], ngx.now())) }
end

--- POST /stress/dedupe?prefix=P&ms=T&slot_ms=S&every=K&stall_ms=MS: seen()
-- calls for T milliseconds (at most 20000 calls), each of the id of the
-- current S-millisecond slot of the clock (so that both workers check the
-- same id at the same time); { used = ids checked, first = ids seen first
-- here, failed, stalls, pid }.
function _M.dedupe()
  install()
  local args = ngx.req.get_uri_args()
  local p = args_plan(args, "truv_dedupe_real")
  local store = shdict.dedupe(DEDUPE_DICT, { prefix = args.prefix })
  local slot = tonumber(args.slot_ms) / 1000
  local used, first, failed = {}, {}, 0
  ngx.update_time()
  local stop = ngx.now() + tonumber(args.ms) / 1000
  for _ = 1, 20000 do
    ngx.update_time()
    if ngx.now() >= stop then break end
    local id = "wh-" .. math.floor(ngx.now() / slot)
    used[id] = true
    local r = store:seen(id, ngx.now(), 3600)
    if r then first[#first + 1] = id elseif r == nil then failed = failed + 1 end
  end
  local list = {}
  for id in pairs(used) do list[#list + 1] = id end
  respond{ used = list, first = first, failed = failed, stalls = p.stalls,
           pid = ngx.worker.pid() }
end

--- POST /stress/hang?prefix=P&limit=L&hang_at=2&hang_ms=MS: one reserve of
-- the pair that stops, busy, before its second record write (its locks
-- taken, one record written) for MS milliseconds; the spec kills the worker.
function _M.hang()
  install()
  local args = ngx.req.get_uri_args()
  args_plan(args, "truv_quota_real")
  local store = quota_store(args)
  local t, err = store:reserve(KEYS, ngx.now())
  respond{ ticket = t, err = err and tostring(err) }
end

--- GET /stress/hung: { pid } of the worker that hangs (0: none yet).
function _M.hung()
  respond{ pid = ngx.shared.truv_quota_real:get("hang:pid") or 0, me = ngx.worker.pid() }
end

--- POST /stress/after?prefix=P&limit=L: one reserve of the pair, then the
-- counts; { ticket, err, a, b, pid }.
function _M.after()
  install()
  local args = ngx.req.get_uri_args()
  local store = quota_store(args)
  local t, err = store:reserve(KEYS, ngx.now())
  respond{ ticket = t or false, err = err and tostring(err) or false,
           a = (store:usage(KEYS[1], ngx.now())), b = (store:usage(KEYS[2], ngx.now())),
           pid = ngx.worker.pid() }
end

return _M
