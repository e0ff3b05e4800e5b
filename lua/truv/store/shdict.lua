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
--   local counters = shdict.counters("truv_metrics")      -- truv.counters, for /metrics
--
-- Atomicity. A shared dictionary offers atomic single operations but no
-- compare-and-set, so every read-decide-write of these stores runs under a
-- lock per record: an entry "<prefix>l<record key>" `safe_add`ed with no
-- expiry, holding the holder's token "<pid> <start> <n>" (the process, its
-- start time from /proc/<pid>/stat, so that a reused pid names another
-- process, and a count of that store's acquisitions there). A lock is never
-- taken from a live holder: there is no lease to run out while its holder
-- is merely slow (preempted, its cached clock stale, a CPU hog beside it),
-- so two workers never decide on one record at once. The locks of a call
-- are taken all at once or not at all, in sorted key order: one found taken
-- makes the caller drop the others it took and try again after a pause, so
-- that nobody holds a lock while waiting for another. The holder checks,
-- before writing anything, that its locks still hold its token (a call that
-- finds one gone writes nothing and fails with "store_busy"), and releases
-- them by `delete`. The section between taking and releasing never yields
-- (only dictionary calls and string work), so light threads of one worker
-- never meet a held lock; another worker's is waited for by a few spins,
-- then by ngx.sleep pauses of 1 to 16 ms (where the phase allows sleeping;
-- elsewhere by spinning on a refreshed clock), for at most `lock_wait`
-- seconds (a store option, default 3), after which the call returns nil,
-- err (kind "internal", code "store_busy").
--
-- A worker that dies holding a lock (killed, crashed) costs little: a caller
-- that finds a lock taken past its spins reads /proc for the holder, and when
-- that process is gone (or a zombie, or another process under the same pid)
-- frees the lock, at once, then takes it (one caller frees a given lock: it
-- first adds a claim "<prefix>b<record key> <token>", kept a day; a warning
-- is logged). Waiters on a dead holder lose a few milliseconds, no
-- record is lost, and nothing is admitted twice. A reserve cut short
-- half-way may leave its entry on the records it had written and not on the
-- others: those entries are counted until they leave the window and are
-- never released (fewer refreshes admitted, never more). Reading /proc needs
-- Linux: a store refuses to open where /proc/self/stat cannot be read.
--
-- Layout (all under `prefix`, default "truv:"): a quota record per
-- connection key, "<prefix>q:<key>" = "<ms>:<ticket>,..." (in-window
-- entries, oldest first; an entry Truv's refusal recorded has an empty
-- ticket); a ticket counter "<prefix>qt" (dict:incr); the connection's
-- facts (truv.quota), "<prefix>f:<key>" = "<dead ms>,<alive ms>,<auth ms>,
-- <reason>", kept 400 days after its last change; a de-duplication
-- record per webhook id, "<prefix>s:<id>" = expiry in ms, and one per
-- object, "<prefix>o:<object>" = updated_at in ms; locks "<prefix>l<record
-- key>" and their claims "<prefix>b<record key> <token>". Nothing a quota
-- store writes evicts (`safe_add`, `safe_set`): a full dictionary fails the
-- reserve (nil, err) rather than dropping another connection's log.
-- De-duplication records use `set` and may evict the least recently used
-- entries when the dictionary is full (a very old webhook could then be
-- handled twice; a warning is logged): size the dictionary for `ttl` worth
-- of webhooks. So the two kinds never share a dictionary (an eviction could
-- drop a connection's log, and the store would admit refreshes past the
-- limit): each store marks its dictionary with its kind ("truv.kind"), and
-- a store of the other kind refuses to open it. Nothing else should write
-- to these dictionaries either.
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
local core = require "truv.core"
local errors = require "truv.errors"
local quota_mod = require "truv.quota"

local ngx = ngx
local type, error, tostring, tonumber, pairs, ipairs = type, error, tostring, tonumber, pairs,
                                                      ipairs
local setmetatable, pcall = setmetatable, pcall
local io_open = io.open
local format, gmatch, match = string.format, string.gmatch, string.match
local floor, huge = math.floor, math.huge
local concat, sort = table.concat, table.sort

local _M = {}

local SPINS = 32                      -- tries in a row before a pause
local PAUSE_MIN, PAUSE_MAX = 0.001, 0.016
local CHECK_EVERY = 16                -- rounds between two looks at the holder, spinning
local MAX_ROUNDS = 1e6                -- a bound on any wait, whatever the clock does
local CLAIM_TTL_S = 86400             -- how long a freed lock's claim is kept
local WANT_AFTER = 6                  -- rounds (about 30 ms) before a waiter asks priority
local WANT_TTL_S = 0.2                -- how long a request for priority lasts unrenewed
local ORDER_TTL_S = core.lists.defaults.order_retention_s   -- an ordering record's life,
                                                            -- as the C stores (truv/dedupe.h)
local DEFAULT_LOCK_WAIT_S = 3
local KIND_KEY = "truv.kind"          -- which kind of store a dictionary holds

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

local function finite(v)
  return type(v) == "number" and v == v and v ~= huge and v ~= -huge
end

-- The options table of a store constructor: only `allowed` keys, the key
-- prefix (default "truv:") and lock_wait (seconds, default 3). Returns
-- opts (a table), the prefix and lock_wait.
local function store_options(fname, opts, allowed)
  opts = opts or {}
  if type(opts) ~= "table" then argerror(fname, 2, "table expected, got " .. type(opts), 4) end
  for k in pairs(opts) do
    if not allowed[k] then argerror(fname, 2, "unknown option '" .. tostring(k) .. "'", 4) end
  end
  local prefix = opts.prefix or "truv:"
  if type(prefix) ~= "string" then argerror(fname, 2, "'prefix' must be a string", 4) end
  local wait = opts.lock_wait or DEFAULT_LOCK_WAIT_S
  if not finite(wait) or wait <= 0 then
    argerror(fname, 2, "'lock_wait' must be a number of seconds > 0", 4)
  end
  return opts, prefix, wait
end

local function ms(t)
  return floor(t * 1000 + 0.5)
end

local function store_error(code, msg)
  return errors.new("internal", code, msg)
end

-- The state letter and start time (field 22) of process `pid`, from
-- /proc/<pid>/stat; or nil and the errno of the failed open (nil when the
-- file said nothing usable).
local function proc_stat(pid)
  local f, _, code = io_open("/proc/" .. pid .. "/stat", "r")
  if not f then return nil, code end
  local text = f:read("*a")
  f:close()
  -- the command name, in parentheses, may hold anything: fields follow the last ")"
  local state, rest = match(text or "", "^.*%) (%S) (.*)$")
  if not state then return nil end
  local i = 3
  for field in gmatch(rest, "%S+") do
    i = i + 1
    if i == 22 then return state, field end
  end
  return nil
end

local ENOENT, ESRCH = 2, 3

--- Is the process that wrote lock token `holder` still running? Unsure
-- (an unreadable /proc entry for another reason) counts as running.
local function holder_alive(holder)
  local pid, start = match(holder, "^(%d+) (%d+) ")
  if not pid then return true end
  local state, other = proc_stat(pid)
  if not state then return not (other == ENOENT or other == ESRCH) end
  if state == "Z" or state == "X" or state == "x" then return false end
  return other == start
end

local function open_dict(name, fname, kind)
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
  if not proc_stat(ngx.worker.pid()) then
    error(fname .. ": cannot read /proc/" .. ngx.worker.pid() .. "/stat (the stores' locks " ..
          "need Linux's /proc to tell a live lock holder from a dead one)", 3)
  end
  local ok, err = dict:safe_add(KIND_KEY, kind)
  local held = not ok and err == "exists" and dict:get(KIND_KEY)
  if not ok and not held then
    error(format("%s: the shared dictionary '%s' cannot hold a record: %s", fname, name,
                 tostring(err)), 3)
  end
  if held and held ~= kind then
    error(format("%s: the shared dictionary '%s' holds a %s store: give the %s store a " ..
                 "dictionary of its own (a de-duplication store may evict entries when full)",
                 fname, name, held, kind), 3)
  end
  return dict
end

-- ------------------------------------------------------------------ locks

--- A fresh lock token of this process for `self` (see Atomicity above). A
-- store made before a fork (init_by_lua) learns the worker's pid on first use.
local function new_token(self)
  local pid = ngx.worker.pid()
  if pid ~= self.pid then
    local _, start = proc_stat(pid)
    if not start then return nil end
    self.pid, self.me, self.serial = pid, pid .. " " .. start .. " ", 0
  end
  local n = self.serial + 1
  self.serial = n
  return self.me .. n
end

-- lkeys: one lock key (a string) or a sorted array of distinct ones.
local function count_of(lkeys)
  return type(lkeys) == "string" and 1 or #lkeys
end

local function key_at(lkeys, i)
  if type(lkeys) == "string" then return lkeys end
  return lkeys[i]
end

--- Frees the lock `lkey` if the process holding it is gone. Returns true
-- when the lock is free now (try again at once).
local function free_if_dead(self, lkey)
  local dict = self.dict
  local holder = dict:get(lkey)
  if holder == nil then return true end
  if holder_alive(holder) then return false end
  -- one caller frees it: the one whose claim on that holder's lock is added
  local claim = self.claim_prefix .. lkey:sub(#self.lock_prefix + 1) .. " " .. holder
  if not dict:safe_add(claim, true, CLAIM_TTL_S) then return false end
  -- the dead holder cannot release, no other caller frees it, and nobody
  -- takes a lock that exists: it still holds that token
  if dict:get(lkey) == holder then
    dict:delete(lkey)
    ngx.log(ngx.WARN, "truv: freed a lock of the shared dictionary '", self.name,
            "' held by a process that died (", holder, ")")
  end
  return true
end

local function drop(dict, lkeys, n)
  for i = n, 1, -1 do dict:delete(key_at(lkeys, i)) end
end

-- The key of the request for priority on lock `lkey`.
local function want_key(self, lkey)
  return self.want_prefix .. lkey:sub(#self.lock_prefix + 1)
end

-- One try at every lock of `lkeys`, stepping aside from a lock another
-- caller asked priority on. Returns nil when all are taken with `token`;
-- else, having dropped those it took, the key found taken and "taken" or
-- "wanted"; or false, err when the dictionary failed.
local function try_all(self, lkeys, token)
  local dict = self.dict
  for i = 1, count_of(lkeys) do
    local lkey = key_at(lkeys, i)
    local wanted_by = dict:get(want_key(self, lkey))
    if wanted_by ~= nil and wanted_by ~= token then
      drop(dict, lkeys, i - 1)
      return lkey, "wanted"
    end
    local ok, err = dict:safe_add(lkey, token)
    if not ok then
      drop(dict, lkeys, i - 1)
      if err ~= "exists" then
        return false, store_error("store_failed", "the shared dictionary failed: " ..
                                  tostring(err))
      end
      return lkey, "taken"
    end
  end
  return nil
end

local function unwant(self, wkey, token)
  if wkey and self.dict:get(wkey) == token then self.dict:delete(wkey) end
end

-- Asks priority on lock `lkey` for `token` (or renews it), unless another
-- caller has; returns the request's key (or nil). A hint, not a lock: the
-- others step aside until it lapses (WANT_TTL_S) or is withdrawn.
local function want(self, lkey, token, prev)
  local dict, wkey = self.dict, want_key(self, lkey)
  if prev and prev ~= wkey then unwant(self, prev, token) end
  local cur = dict:get(wkey)
  if cur == nil then
    if dict:safe_add(wkey, token, WANT_TTL_S) then return wkey end
  elseif cur == token then
    dict:safe_set(wkey, token, WANT_TTL_S)
    return wkey
  end
  return nil
end

--- Takes every lock of `lkeys` or none (see Atomicity above); returns the
-- token that holds them, or nil, err. Each round tries SPINS times in a row
-- (another worker busy on the same keys frees them for a moment between
-- two of its calls), looks whether the holder died, then pauses; after a
-- few rounds it asks priority on the lock found taken, so that a worker
-- taking the same locks call after call without yielding lets it in.
local function acquire(self, lkeys)
  local token = new_token(self)
  if not token then
    return nil, store_error("store_failed", "cannot read this process's /proc entry")
  end
  local rounds, deadline, pause, wanted = 0, nil, PAUSE_MIN, nil
  while true do
    local busy, why
    for _ = 1, SPINS do
      busy, why = try_all(self, lkeys, token)
      if not busy then
        unwant(self, wanted, token)
        if busy == false then return nil, why end
        return token
      end
      if why == "wanted" then break end
    end
    rounds = rounds + 1
    local sleeps = SLEEP_PHASES[ngx.get_phase()]
    local freed = why == "taken" and (sleeps or rounds % CHECK_EVERY == 0) and
                  free_if_dead(self, busy)
    if not deadline then
      ngx.update_time()
      deadline = ngx.now() + self.lock_wait
    elseif ngx.now() >= deadline or rounds > MAX_ROUNDS then
      unwant(self, wanted, token)
      return nil, store_error("store_busy", format("a shared-dictionary lock stayed taken " ..
                              "for %g s", self.lock_wait))
    end
    if not freed then
      if why == "taken" and rounds >= WANT_AFTER then
        wanted = want(self, busy, token, wanted)
      end
      if sleeps then
        -- with priority asked, look often: the others wait for us
        ngx.sleep(wanted and PAUSE_MIN or pause)
        if pause < PAUSE_MAX then pause = pause * 2 end
      else
        ngx.update_time()   -- no sleeping here: spin, with a clock that moves
      end
    end
  end
end

--- Do the locks still hold `token`? Checked before anything is written.
local function owns(dict, lkeys, token)
  for i = 1, count_of(lkeys) do
    if dict:get(key_at(lkeys, i)) ~= token then return false end
  end
  return true
end

local function lost_error()
  return store_error("store_busy", "a shared-dictionary lock was lost before the write " ..
                     "(nothing was written)")
end

local function release(dict, lkeys, token)
  for i = count_of(lkeys), 1, -1 do
    local lkey = key_at(lkeys, i)
    if dict:get(lkey) == token then dict:delete(lkey) end
  end
end

-- The results of a pcall: releases the locks, then passes them on (or
-- raises the error again).
local function after(dict, lkeys, token, ok, a, b, c)
  release(dict, lkeys, token)
  if not ok then error(a, 0) end
  return a, b, c
end

--- Runs fn(self, lkeys, token, ...) holding the locks of `lkeys` (one lock
-- key, or a sorted array of distinct ones); fn checks owns() before its
-- first write. Returns what fn returns, or nil, err when the locks cannot
-- be taken; an error raised by fn is raised again after unlocking.
local function with_locks(self, lkeys, fn, ...)
  local token, err = acquire(self, lkeys)
  if not token then return nil, err end
  return after(self.dict, lkeys, token, pcall(fn, self, lkeys, token, ...))
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

--- Starts the ticket counter if it is missing (a new or flushed
-- dictionary), without evicting anything (incr's init may).
local function seed_tickets(self)
  self.dict:safe_add(self.prefix .. "qt", 0)
end

local function reserve_locked(self, lkeys, token, keys, now_ms)
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
  if not owns(dict, lkeys, token) then return nil, lost_error() end

  local n, err = dict:incr(self.prefix .. "qt", 1)
  if not n and err == "not found" then
    seed_tickets(self)
    n, err = dict:incr(self.prefix .. "qt", 1)
  end
  if not n then return nil, store_error("store_failed", "ticket counter: " .. tostring(err)) end
  local ticket = format("t%.0f", n)
  local written = {}
  for k, r in pairs(records) do
    insert(r.ts, r.tks, now_ms, ticket)
    local ok, werr = self:_write(self:_rkey(k), r.ts, r.tks)
    if not ok then
      -- all or nothing: put back what was written (never larger than what
      -- it replaces; should that fail too, an entry stays: counted, not lost)
      for _, wk in ipairs(written) do
        local old = records[wk].old
        if old then
          dict:safe_set(self:_rkey(wk), old, self.expire_s)
        else
          dict:delete(self:_rkey(wk))
        end
      end
      return nil, werr
    end
    written[#written + 1] = k
  end
  return ticket
end

-- The lock keys of a sorted list of distinct quota keys: one string, or an
-- array when there are several.
local function lock_keys(self, distinct)
  if #distinct == 1 then return self.lock_prefix .. self:_rkey(distinct[1]) end
  local lkeys = {}
  for i, k in ipairs(distinct) do lkeys[i] = self.lock_prefix .. self:_rkey(k) end
  return lkeys
end

--- store:reserve(keys, now) -> ticket | false, not_before, spent | nil, err
function Quota:reserve(keys, now)
  check_keys("reserve", keys)
  check_time("reserve", 2, now)
  local lkeys
  if #keys == 1 then
    lkeys = self.lock_prefix .. self:_rkey(keys[1])
  else
    lkeys = lock_keys(self, distinct_sorted(keys))
  end
  local ticket, not_before, spent = with_locks(self, lkeys, reserve_locked, keys, ms(now))
  return ticket, not_before, spent
end

local function release_locked(self, lkeys, token, keys, ticket)
  local dict = self.dict
  local checked = false
  for _, k in ipairs(keys) do
    local rkey = self:_rkey(k)
    local ts, tks = decode(dict:get(rkey))
    local kts, ktks, dropped = {}, {}, false
    for i = 1, #ts do
      if tks[i] == ticket then
        dropped = true
      else
        kts[#kts + 1], ktks[#ktks + 1] = ts[i], tks[i]
      end
    end
    if dropped then
      if not checked then
        if not owns(dict, lkeys, token) then return nil, lost_error() end
        checked = true
      end
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
  return with_locks(self, lock_keys(self, distinct), release_locked, distinct, ticket)
end

local function record_limit_locked(self, lkey, token, key, now_ms)
  local rkey = self:_rkey(key)
  local ts, tks = decode(self.dict:get(rkey))
  local kts, ktks = {}, {}
  for i = 1, #ts do
    if ts[i] >= now_ms then kts[#kts + 1], ktks[#ktks + 1] = ts[i], tks[i] end
  end
  while #kts < self.limit do insert(kts, ktks, now_ms, "") end
  if not owns(self.dict, lkey, token) then return nil, lost_error() end
  return self:_write(rkey, kts, ktks)
end

--- store:record_limit(key, now) -> true | nil, err
function Quota:record_limit(key, now)
  check_key("record_limit", 1, key)
  check_time("record_limit", 2, now)
  return with_locks(self, self.lock_prefix .. self:_rkey(key), record_limit_locked, key, ms(now))
end

-- times: Truv's, in the window, oldest first, at most limit (see record_count).
local function record_count_locked(self, lkey, token, key, times, now_ms)
  local rkey = self:_rkey(key)
  local ats, atks = decode(self.dict:get(rkey))
  local ts, tks = in_window(self, ats, atks, now_ms)
  if #ts >= #times then return true end
  for i = 1, #times - #ts do insert(ts, tks, times[i], "") end
  if not owns(self.dict, lkey, token) then return nil, lost_error() end
  return self:_write(rkey, ts, tks)
end

--- store:record_count(key, times, now) -> true | nil, err (see truv.quota)
function Quota:record_count(key, times, now)
  check_key("record_count", 1, key)
  if type(times) ~= "table" then argerror("record_count", 2, "array of times expected") end
  check_time("record_count", 3, now)
  local now_ms, from = ms(now), ms(now) - self.window_ms
  local list = {}
  for i = 1, #times do
    local t = times[i]
    if not finite(t) then argerror("record_count", 2, "array of finite times expected") end
    if ms(t) > from then list[#list + 1] = ms(t) end
  end
  if #list == 0 then return true end
  sort(list)
  while #list > self.limit do table.remove(list, 1) end   -- the newest `limit` count
  return with_locks(self, self.lock_prefix .. self:_rkey(key), record_count_locked, key, list,
                    now_ms)
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

-- ------------------------------------------------------ connection facts

local FACTS = { dead = 1, alive = 2, auth = 3 }
local FACT_RETENTION_S = core.lists.defaults.fact_retention_s   -- as the C stores (truv/quota.h)

function Quota:_fkey(k)
  return self.prefix .. "f:" .. k
end

-- "<dead_ms>,<alive_ms>,<auth_ms>,<reason>" (empty for what was never noted)
local function decode_facts(s)
  local at = { nil, nil, nil }
  local reason
  if s then
    local a, b, c, r = match(s, "^(%d*),(%d*),(%d*),(.*)$")
    at[1], at[2], at[3] = tonumber(a), tonumber(b), tonumber(c)
    if r and r ~= "" then reason = r end
  end
  return at, reason
end

local function encode_facts(at, reason)
  local parts = {}
  for i = 1, 3 do parts[i] = at[i] and format("%.0f", at[i]) or "" end
  parts[4] = reason or ""
  return concat(parts, ",")
end

local function note_locked(self, lkey, token, key, i, at_ms, reason)
  local fkey = self:_fkey(key)
  local at, old_reason = decode_facts(self.dict:get(fkey))
  if at[i] and at[i] > at_ms then return true end   -- an older sighting
  at[i] = at_ms
  if i == 1 then old_reason = reason end
  if not owns(self.dict, lkey, token) then return nil, lost_error() end
  local ok, err = self.dict:safe_set(fkey, encode_facts(at, old_reason), FACT_RETENTION_S)
  if not ok then
    return nil, store_error("store_full", format("the shared dictionary '%s' cannot hold the " ..
                            "connection's facts: %s", self.name, tostring(err)))
  end
  return true
end

--- store:note(key, fact, at [, reason]) -> true | nil, err (see truv.quota)
function Quota:note(key, fact, at, reason)
  check_key("note", 1, key)
  local i = FACTS[fact]
  if not i then argerror("note", 2, "\"dead\", \"alive\" or \"auth\" expected") end
  check_time("note", 3, at)
  if reason ~= nil then
    if fact ~= "dead" then argerror("note", 4, "only a dead fact has a reason") end
    if type(reason) ~= "string" or #reason == 0 or #reason > 31 or match(reason, "[^a-z0-9_%-]") then
      argerror("note", 4, "a reason is 1 to 31 characters of a-z, 0-9, '_' and '-'")
    end
  end
  local fkey = self:_fkey(key)
  return with_locks(self, self.lock_prefix .. fkey, note_locked, key, i, ms(at), reason)
end

--- store:facts(key) -> { dead_at =, dead_reason =, alive_at =, auth_at = } | nil, err
-- One read of one record: no lock needed.
function Quota:facts(key)
  check_key("facts", 1, key)
  local at, reason = decode_facts(self.dict:get(self:_fkey(key)))
  local f = {}
  if at[1] then
    f.dead_at, f.dead_reason = at[1] / 1000, reason
  end
  if at[2] then f.alive_at = at[2] / 1000 end
  if at[3] then f.auth_at = at[3] / 1000 end
  return f
end

function Quota.close()
  return true
end

function Quota:__tostring()
  return format("truv.store.shdict quota (%s, %d per %gs)", self.name, self.limit, self.window)
end

--- shdict.quota(dict_name [, opts]) -> store
-- opts: limit (default 3, truv.quota's), window (seconds, default 86400), prefix
-- (default "truv:"; stores with different prefixes are independent),
-- lock_wait (seconds a call waits for a lock another worker holds, default
-- 3; then it fails with "store_busy").
function _M.quota(name, opts)
  local prefix, lock_wait
  opts, prefix, lock_wait = store_options("quota", opts, { limit = true, window = true,
                                                            prefix = true, lock_wait = true })
  local limit = opts.limit or quota_mod.DEFAULT_LIMIT
  local window = opts.window or quota_mod.DEFAULT_WINDOW
  if type(limit) ~= "number" or limit ~= floor(limit) or limit < 1 or limit > quota_mod.MAX_LIMIT then
    argerror("quota", 2, "'limit' must be an integer from 1 to " .. quota_mod.MAX_LIMIT)
  end
  if not finite(window) or window < 0.001 then
    argerror("quota", 2, "'window' must be a number of seconds >= 0.001")
  end
  local dict = open_dict(name, "quota", "quota")
  local policy = format("%d/%.3f", limit, window)
  local ok = dict:safe_add(prefix .. "qp", policy)
  local recorded = not ok and dict:get(prefix .. "qp")
  if recorded and recorded ~= policy then
    error(format("quota: the shared dictionary '%s' (prefix '%s') holds quota kept with " ..
                 "limit/window %s, not %s", name, prefix, recorded, policy), 2)
  end
  local self = setmetatable({
    dict = dict, name = name, prefix = prefix, lock_prefix = prefix .. "l",
    claim_prefix = prefix .. "b", want_prefix = prefix .. "w", lock_wait = lock_wait,
    limit = limit, window = window, window_ms = ms(window),
    expire_s = 2 * window + 60, kind = "shdict", path = name,
  }, Quota)
  seed_tickets(self)
  return self
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

local function seen_locked(self, lkey, token, rkey, now_ms, expiry_ms, expire_s)
  local cur = self.dict:get(rkey)
  if cur and cur > now_ms then return false end
  if not owns(self.dict, lkey, token) then return nil, lost_error() end
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
  return with_locks(self, self.lock_prefix .. rkey, seen_locked, rkey, ms(now), ms(now + ttl),
                    ttl + 60)
end

local function last_update_locked(self, lkey, token, rkey, at_ms)
  local cur = self.dict:get(rkey)
  if cur and at_ms < cur then return false end
  if not owns(self.dict, lkey, token) then return nil, lost_error() end
  local ok, err = self:_set(rkey, at_ms, ORDER_TTL_S)
  if not ok then return nil, err end
  return true
end

--- store:last_update(object_key, updated_at) -> true | false | nil, err
function Dedupe:last_update(object_key, updated_at)
  check_id("last_update", object_key)
  if not finite(updated_at) then argerror("last_update", 2, "finite time expected") end
  local rkey = self.prefix .. "o:" .. object_key
  return with_locks(self, self.lock_prefix .. rkey, last_update_locked, rkey, ms(updated_at))
end

local function forget_locked(self, lkey, token, rkey)
  if not owns(self.dict, lkey, token) then return nil, lost_error() end
  self.dict:delete(rkey)
  return true
end

--- store:forget(id) -> true | nil, err
function Dedupe:forget(id)
  check_id("forget", id)
  local rkey = self.prefix .. "s:" .. id
  return with_locks(self, self.lock_prefix .. rkey, forget_locked, rkey)
end

function Dedupe.close()
  return true
end

function Dedupe:__tostring()
  return format("truv.store.shdict dedupe (%s)", self.name)
end

--- shdict.dedupe(dict_name [, opts]) -> store
-- opts: prefix (default "truv:"), lock_wait (as for quota).
function _M.dedupe(name, opts)
  local _, prefix, lock_wait = store_options("dedupe", opts, { prefix = true, lock_wait = true })
  local dict = open_dict(name, "dedupe", "dedupe")
  return setmetatable({ dict = dict, name = name, prefix = prefix, lock_prefix = prefix .. "l",
                        claim_prefix = prefix .. "b", want_prefix = prefix .. "w",
                        lock_wait = lock_wait, kind = "shdict", path = name }, Dedupe)
end

-- --------------------------------------------------------------- counters

local Counters = {}
Counters.__index = Counters
_M.Counters = Counters

--- store:incr(name [, n]): adds n (default 1); atomic across workers.
-- Never raises: a dictionary that cannot hold the counter logs a warning
-- and returns nil, err.
function Counters:incr(name, n)
  local v, err = self.dict:incr(self.prefix .. name, n or 1, 0)
  if not v and not self.warned then
    self.warned = true
    ngx.log(ngx.WARN, "truv: the shared dictionary '", self.name, "' cannot hold counter ",
            tostring(name), ": ", tostring(err), " (make it larger)")
  end
  return v, err
end

--- store:snapshot() -> { [name] = value } of every counter of every worker.
function Counters:snapshot()
  local out, prefix = {}, self.prefix
  local n = #prefix
  for _, k in ipairs(self.dict:get_keys(0)) do
    if k:sub(1, n) == prefix then
      local v = self.dict:get(k)
      if type(v) == "number" then out[k:sub(n + 1)] = v end
    end
  end
  return out
end

function Counters:__tostring()
  return format("truv.store.shdict counters (%s)", self.name)
end

--- shdict.counters(dict_name [, opts]) -> a counters object (truv.counters)
-- kept in a shared dictionary of its own, so that every worker adds to the
-- same numbers (what a /metrics endpoint reads). opts: prefix (default
-- "truv:"). A few hundred bytes hold every counter: `lua_shared_dict
-- truv_metrics 1m;`.
function _M.counters(name, opts)
  local _, prefix = store_options("counters", opts, { prefix = true })
  local dict = open_dict(name, "counters", "counters")
  return setmetatable({ dict = dict, name = name, prefix = prefix .. "c:" }, Counters)
end

return _M
