--- Quota and de-duplication stores on an nginx shared dictionary
-- (`lua_shared_dict`), shared by every worker of one nginx: the contracts
-- of truv.quota and truv.dedupe, checked by the same conformance specs as
-- the C stores.
--
--   # nginx.conf, http block
--   lua_shared_dict truv_quota 10m;       # about 150 bytes per connection
--   lua_shared_dict truv_webhooks 20m;    # about 120 bytes per webhook_id kept
--
--   local shdict = require "truv.store.shdict"
--   local quota = shdict.quota("truv_quota")             -- { limit =, window = }
--   local dedupe = shdict.dedupe("truv_webhooks")
--   local client = truv.new{ ..., quota = quota }
--   local receiver = truv.receiver{ ..., dedupe = dedupe }
--
-- Atomicity. A shared dictionary offers atomic single operations but no
-- compare-and-set, so every read-decide-write of these stores runs under a
-- lock per key: an entry `add`ed with a short expiry (so that a worker that
-- dies holding it cannot block the key for long), taken in sorted key order
-- when a reserve spans several connections (no deadlock), released by
-- `delete`. The section between taking and releasing never yields (only
-- dictionary calls and string work), so light threads of one worker never
-- meet a held lock; another worker's is waited for by a few spins, then by
-- ngx.sleep steps (where the phase allows sleeping), for at most
-- LOCK_WAIT_S, after which the call returns nil, err (kind "internal",
-- code "store_busy").
--
-- Layout (all under `prefix`, default "truv:"): a quota record per
-- connection key, "<prefix>q:<key>" = "<ms>:<ticket>,..." (in-window
-- entries, oldest first; an entry Truv's refusal recorded has an empty
-- ticket); a ticket counter "<prefix>qt" (dict:incr); a de-duplication
-- record per webhook id, "<prefix>s:<id>" = expiry in ms, and one per
-- object, "<prefix>o:<object>" = updated_at in ms; locks "<prefix>l<record
-- key>". Quota records are written with `safe_set`: a full dictionary
-- fails the reserve (nil, err) rather than evicting another connection's
-- log. De-duplication records use `set` and may evict the least recently
-- used ones when the dictionary is full (a very old webhook could then be
-- handled twice; a warning is logged): size the dictionary for `ttl` worth
-- of webhooks.
--
-- Expiry: records also carry an nginx expiry (real time) so that the
-- dictionary forgets idle connections and old webhooks by itself: a quota
-- record two windows after its last write, a webhook id `ttl` after it was
-- seen (plus a minute), an ordering record after 30 days. The stores' logic
-- uses the `now` it is given; the clock given to the client or receiver
-- should follow real time (ngx.now, the default inside nginx).
--
-- Several handles may open one dictionary (every worker does): they share
-- everything under the same prefix, and must use the same limit and window
-- (the first handle records its policy; another policy raises).
local errors = require "truv.errors"

local ngx = ngx
local type, error, tostring, tonumber, pairs, ipairs = type, error, tostring, tonumber, pairs,
                                                      ipairs
local setmetatable, pcall = setmetatable, pcall
local format, gmatch, match = string.format, string.gmatch, string.match
local floor, huge = math.floor, math.huge
local concat, sort = table.concat, table.sort

local _M = {
  LOCK_TTL_S = 2,        -- a lock left by a dead worker frees itself after this
  LOCK_WAIT_S = 3,       -- a caller gives up waiting for a lock after this
  LOCK_SPINS = 32,       -- tries before the first sleep
  ORDER_TTL_S = 30 * 86400,
}

-- Phases where ngx.sleep may yield.
local SLEEP_PHASES = {
  rewrite = true, server_rewrite = true, access = true, content = true, timer = true,
  ssl_cert = true, ssl_session_fetch = true, ssl_client_hello = true, preread = true,
}

-- Raises at the caller of the function that called argerror (or `level`
-- frames up, for checks made in a helper of that function).
local function argerror(fname, n, msg, level)
  error(format("bad argument #%d to '%s' (%s)", n, fname, msg), level or 3)
end

-- The options table of a store constructor: only `allowed` keys, and the
-- key prefix (default "truv:"). Returns opts (a table) and the prefix.
local function store_options(fname, opts, allowed)
  opts = opts or {}
  if type(opts) ~= "table" then argerror(fname, 2, "table expected, got " .. type(opts), 4) end
  for k in pairs(opts) do
    if not allowed[k] then argerror(fname, 2, "unknown option '" .. tostring(k) .. "'", 4) end
  end
  local prefix = opts.prefix or "truv:"
  if type(prefix) ~= "string" then argerror(fname, 2, "'prefix' must be a string", 4) end
  return opts, prefix
end

local function finite(v)
  return type(v) == "number" and v == v and v ~= huge and v ~= -huge
end

local function ms(t)
  return floor(t * 1000 + 0.5)
end

local function store_error(code, msg)
  return errors.new("internal", code, msg)
end

local function open_dict(name, fname)
  if type(name) ~= "string" or name == "" then
    argerror(fname, 1, "shared dictionary name expected, got " .. type(name))
  end
  if not (ngx and ngx.shared) then
    error(fname .. ": nginx shared dictionaries exist only inside nginx (OpenResty)", 3)
  end
  local dict = ngx.shared[name]
  if not dict then
    error(format("%s: no shared dictionary '%s' (add `lua_shared_dict %s 10m;` to the http " ..
                 "block of nginx.conf)", fname, name, name), 3)
  end
  return dict
end

-- ------------------------------------------------------------------ locks

local lock_serial, lock_base = 0, nil

--- Takes the lock on `rkey`; returns its token or nil, err. A token is
-- unique across workers: the worker's pid (< 2^22) above 30 bits of a
-- counter, exact in a double.
local function lock(dict, lkey)
  lock_serial = (lock_serial + 1) % 1073741824
  lock_base = lock_base or ngx.worker.pid() * 1073741824
  local token = lock_base + lock_serial
  local deadline
  local pause = 0.001
  local tries = 0
  while true do
    local ok, err = dict:safe_add(lkey, token, _M.LOCK_TTL_S)
    if ok then return token end
    if err ~= "exists" then
      return nil, store_error("store_failed", "the shared dictionary failed: " .. tostring(err))
    end
    tries = tries + 1
    if tries > _M.LOCK_SPINS then
      local now = ngx.now()
      deadline = deadline or now + _M.LOCK_WAIT_S
      if now > deadline or tries > 1e6 then
        return nil, store_error("store_busy", "a shared-dictionary lock stayed taken for " ..
                                _M.LOCK_WAIT_S .. " s")
      end
      if SLEEP_PHASES[ngx.get_phase()] then
        ngx.sleep(pause)
        if pause < 0.016 then pause = pause * 2 end
      else
        ngx.update_time()   -- no sleeping here: spin, with a clock that moves
      end
    end
  end
end

local function unlock(dict, lkey, token)
  -- only our own lock (it may have expired and been taken by another)
  if dict:get(lkey) == token then dict:delete(lkey) end
end

-- The results of a pcall: releases the lock, then passes them on (or
-- raises the error again).
local function after_one(dict, lkey, token, ok, a, b, c)
  unlock(dict, lkey, token)
  if not ok then error(a, 0) end
  return a, b, c
end

--- Runs fn(...) holding the lock of one record key (the common case,
-- without the tables with_locks needs).
local function with_lock(self, rkey, fn, ...)
  local dict, lkey = self.dict, self.lock_prefix .. rkey
  local token, err = lock(dict, lkey)
  if not token then return nil, err end
  return after_one(dict, lkey, token, pcall(fn, ...))
end

--- Runs fn(...) holding the locks of every record key in `rkeys` (sorted,
-- distinct). Returns what fn returns, or nil, err when a lock cannot be
-- taken; an error raised by fn is raised again after unlocking.
local function with_locks(self, rkeys, fn, ...)
  if #rkeys == 1 then return with_lock(self, rkeys[1], fn, ...) end
  local dict, prefix = self.dict, self.lock_prefix
  local tokens = {}
  for i, rk in ipairs(rkeys) do
    local token, err = lock(dict, prefix .. rk)
    if not token then
      for j = i - 1, 1, -1 do unlock(dict, prefix .. rkeys[j], tokens[j]) end
      return nil, err
    end
    tokens[i] = token
  end
  local res = { pcall(fn, ...) }
  for i = #rkeys, 1, -1 do unlock(dict, prefix .. rkeys[i], tokens[i]) end
  if not res[1] then error(res[2], 0) end
  return res[2], res[3], res[4]
end

-- ------------------------------------------------------------------ quota

local Quota = {}
Quota.__index = Quota
_M.Quota = Quota

local function check_key(fname, n, k, i)
  if type(k) ~= "string" or not match(k, "^%x+$") or #k ~= 32 then
    if i then argerror(fname, n, format("keys[%d] is not a quota key (32 hex characters)", i)) end
    argerror(fname, n, "quota key expected (32 hex characters)")
  end
end

local function check_keys(fname, keys)
  if type(keys) ~= "table" or #keys == 0 then
    argerror(fname, 1, "non-empty array of quota keys expected")
  end
  for i = 1, #keys do check_key(fname, 1, keys[i], i) end
end

local function check_time(fname, n, t)
  if not finite(t) then argerror(fname, n, "finite time expected") end
end

-- A record's entries: parallel lists of times (ms) and tickets.
local function decode(s)
  local ts, tks = {}, {}
  if s then
    local n = 0
    for t, tk in gmatch(s, "(%d+):([^,]*)") do
      n = n + 1
      ts[n], tks[n] = tonumber(t), tk
    end
  end
  return ts, tks
end

local function encode(ts, tks)
  local parts = {}
  for i = 1, #ts do parts[i] = format("%.0f:%s", ts[i], tks[i]) end
  return concat(parts, ",")
end

-- Entries in the window at now_ms: t > now - window.
local function in_window(self, ts, tks, now_ms)
  local from = now_ms - self.window_ms
  local wts, wtks = {}, {}
  for i = 1, #ts do
    if ts[i] > from then
      wts[#wts + 1], wtks[#wtks + 1] = ts[i], tks[i]
    end
  end
  return wts, wtks
end

-- When a full key has room: the (c - limit + 1)-th oldest entry's t + window.
local function next_free(self, wts)
  local c = #wts
  if c < self.limit then return nil end
  return (wts[c - self.limit + 1] + self.window_ms) / 1000
end

-- Inserts (t, tk) keeping the entries sorted by time.
local function insert(ts, tks, t, tk)
  local i = #ts
  while i > 0 and ts[i] > t do
    ts[i + 1], tks[i + 1] = ts[i], tks[i]
    i = i - 1
  end
  ts[i + 1], tks[i + 1] = t, tk
end

function Quota:_rkey(k)
  return self.prefix .. "q:" .. k
end

function Quota:_write(rkey, ts, tks)
  local ok, err
  if #ts == 0 then
    self.dict:delete(rkey)
    return true
  end
  -- kept two windows of real time after the last write, then forgotten
  ok, err = self.dict:safe_set(rkey, encode(ts, tks), self.expire_s)
  if not ok then
    return nil, store_error("store_full", format("the shared dictionary '%s' cannot hold the " ..
                            "quota record: %s", self.name, tostring(err)))
  end
  return true
end

local function distinct_sorted(list)
  local seen, out = {}, {}
  for _, v in ipairs(list) do
    if not seen[v] then
      seen[v] = true
      out[#out + 1] = v
    end
  end
  sort(out)
  return out
end

local function reserve_locked(self, keys, now_ms)
  local dict = self.dict
  local records, spent, spent_seen, not_before = {}, {}, {}, nil
  for _, k in ipairs(keys) do
    if not records[k] then
      local old = dict:get(self:_rkey(k))
      local ats, atks = decode(old)
      local ts, tks = in_window(self, ats, atks, now_ms)
      records[k] = { ts = ts, tks = tks, old = old }
      local nf = next_free(self, ts)
      if nf then
        if not spent_seen[k] then
          spent_seen[k] = true
          spent[#spent + 1] = k
        end
        if not not_before or nf > not_before then not_before = nf end
      end
    end
  end
  if #spent > 0 then return false, not_before, spent end

  local n, err = dict:incr(self.prefix .. "qt", 1, 0)
  if not n then return nil, store_error("store_failed", "ticket counter: " .. tostring(err)) end
  local ticket = format("t%.0f", n)
  local written = {}
  for k, r in pairs(records) do
    insert(r.ts, r.tks, now_ms, ticket)
    local ok, werr = self:_write(self:_rkey(k), r.ts, r.tks)
    if not ok then
      -- all or nothing: put back what was written
      for _, wk in ipairs(written) do
        local old = records[wk].old
        if old then dict:set(self:_rkey(wk), old, self.expire_s) else dict:delete(self:_rkey(wk)) end
      end
      return nil, werr
    end
    written[#written + 1] = k
  end
  return ticket
end

--- store:reserve(keys, now) -> ticket | false, not_before, spent | nil, err
function Quota:reserve(keys, now)
  check_keys("reserve", keys)
  check_time("reserve", 2, now)
  local rkeys = {}
  for i, k in ipairs(distinct_sorted(keys)) do rkeys[i] = self:_rkey(k) end
  local ticket, not_before, spent = with_locks(self, rkeys, reserve_locked, self, keys, ms(now))
  return ticket, not_before, spent
end

local function release_locked(self, keys, ticket)
  for _, k in ipairs(keys) do
    local rkey = self:_rkey(k)
    local ts, tks = decode(self.dict:get(rkey))
    local kts, ktks, dropped = {}, {}, false
    for i = 1, #ts do
      if tks[i] == ticket then
        dropped = true
      else
        kts[#kts + 1], ktks[#ktks + 1] = ts[i], tks[i]
      end
    end
    if dropped then
      local ok, err = self:_write(rkey, kts, ktks)
      if not ok then return nil, err end
    end
  end
  return true
end

--- store:release(keys, ticket) -> true | nil, err
function Quota:release(keys, ticket)
  check_keys("release", keys)
  if type(ticket) ~= "string" then argerror("release", 2, "ticket string expected") end
  if ticket == "" then return true end   -- untagged entries are Truv's refusals
  local distinct = distinct_sorted(keys)
  local rkeys = {}
  for i, k in ipairs(distinct) do rkeys[i] = self:_rkey(k) end
  return with_locks(self, rkeys, release_locked, self, distinct, ticket)
end

local function record_limit_locked(self, key, now_ms)
  local rkey = self:_rkey(key)
  local ts, tks = decode(self.dict:get(rkey))
  local kts, ktks = {}, {}
  for i = 1, #ts do
    if ts[i] >= now_ms then kts[#kts + 1], ktks[#ktks + 1] = ts[i], tks[i] end
  end
  while #kts < self.limit do insert(kts, ktks, now_ms, "") end
  return self:_write(rkey, kts, ktks)
end

--- store:record_limit(key, now) -> true | nil, err
function Quota:record_limit(key, now)
  check_key("record_limit", 1, key)
  check_time("record_limit", 2, now)
  return with_lock(self, self:_rkey(key), record_limit_locked, self, key, ms(now))
end

--- store:usage(key, now) -> used, next_free | nil, err
-- One read of one record: a dictionary get is atomic, so no lock is needed.
function Quota:usage(key, now)
  check_key("usage", 1, key)
  check_time("usage", 2, now)
  local ats, atks = decode(self.dict:get(self:_rkey(key)))
  local ts = in_window(self, ats, atks, ms(now))
  return #ts, next_free(self, ts)
end

function Quota.close()
  return true
end

function Quota:__tostring()
  return format("truv.store.shdict quota (%s, %d per %gs)", self.name, self.limit, self.window)
end

--- shdict.quota(dict_name [, opts]) -> store
-- opts: limit (default 3), window (seconds, default 86400), prefix
-- (default "truv:"; stores with different prefixes are independent).
function _M.quota(name, opts)
  local dict = open_dict(name, "quota")
  local prefix
  opts, prefix = store_options("quota", opts, { limit = true, window = true, prefix = true })
  local limit, window = opts.limit or 3, opts.window or 86400
  if type(limit) ~= "number" or limit ~= floor(limit) or limit < 1 or limit > 1000 then
    argerror("quota", 2, "'limit' must be an integer from 1 to 1000")
  end
  if not finite(window) or window < 0.001 then
    argerror("quota", 2, "'window' must be a number of seconds >= 0.001")
  end
  local policy = format("%d/%.3f", limit, window)
  local ok = dict:safe_add(prefix .. "qp", policy)
  local recorded = not ok and dict:get(prefix .. "qp")
  if recorded and recorded ~= policy then
    error(format("quota: the shared dictionary '%s' (prefix '%s') holds quota kept with " ..
                 "limit/window %s, not %s", name, prefix, recorded, policy), 2)
  end
  return setmetatable({
    dict = dict, name = name, prefix = prefix, lock_prefix = prefix .. "l",
    limit = limit, window = window, window_ms = ms(window),
    expire_s = 2 * window + 60,
  }, Quota)
end

-- ----------------------------------------------------------------- dedupe

local Dedupe = {}
Dedupe.__index = Dedupe
_M.Dedupe = Dedupe

local function check_id(fname, id)
  if type(id) ~= "string" then argerror(fname, 1, "string expected, got " .. type(id)) end
end

function Dedupe:_set(rkey, value, expire_s)
  local ok, err, forcible = self.dict:set(rkey, value, expire_s)
  if not ok then
    return nil, store_error("store_full", format("the shared dictionary '%s' cannot hold a " ..
                            "webhook record: %s", self.name, tostring(err)))
  end
  if forcible and not self.warned then
    self.warned = true
    ngx.log(ngx.WARN, "truv: the shared dictionary '", self.name, "' is full: the least ",
            "recently used webhook records are being evicted (make it larger)")
  end
  return true
end

local function seen_locked(self, rkey, now_ms, expiry_ms, expire_s)
  local cur = self.dict:get(rkey)
  if cur and cur > now_ms then return false end
  local ok, err = self:_set(rkey, expiry_ms, expire_s)
  if not ok then return nil, err end
  return true
end

--- store:seen(id, now, ttl) -> true | false | nil, err
function Dedupe:seen(id, now, ttl)
  check_id("seen", id)
  if not finite(now) then argerror("seen", 2, "finite time expected") end
  if not finite(ttl) then argerror("seen", 3, "finite ttl in seconds expected") end
  if ttl < 0 then argerror("seen", 3, "ttl must be >= 0") end
  local rkey = self.prefix .. "s:" .. id
  return with_lock(self, rkey, seen_locked, self, rkey, ms(now), ms(now + ttl), ttl + 60)
end

local function last_update_locked(self, rkey, at_ms)
  local cur = self.dict:get(rkey)
  if cur and at_ms < cur then return false end
  local ok, err = self:_set(rkey, at_ms, _M.ORDER_TTL_S)
  if not ok then return nil, err end
  return true
end

--- store:last_update(object_key, updated_at) -> true | false | nil, err
function Dedupe:last_update(object_key, updated_at)
  check_id("last_update", object_key)
  if not finite(updated_at) then argerror("last_update", 2, "finite time expected") end
  local rkey = self.prefix .. "o:" .. object_key
  return with_lock(self, rkey, last_update_locked, self, rkey, ms(updated_at))
end

local function forget_locked(self, rkey)
  self.dict:delete(rkey)
  return true
end

--- store:forget(id) -> true | nil, err
function Dedupe:forget(id)
  check_id("forget", id)
  local rkey = self.prefix .. "s:" .. id
  return with_lock(self, rkey, forget_locked, self, rkey)
end

function Dedupe.close()
  return true
end

function Dedupe:__tostring()
  return format("truv.store.shdict dedupe (%s)", self.name)
end

--- shdict.dedupe(dict_name [, opts]) -> store
-- opts: prefix (default "truv:").
function _M.dedupe(name, opts)
  local dict = open_dict(name, "dedupe")
  local _, prefix = store_options("dedupe", opts, { prefix = true })
  return setmetatable({ dict = dict, name = name, prefix = prefix, lock_prefix = prefix .. "l" },
                      Dedupe)
end

return _M
