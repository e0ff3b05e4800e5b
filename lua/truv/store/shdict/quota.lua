--- The quota store on an nginx shared dictionary (truv.store.shdict.quota):
-- truv.quota's contract, connection facts included, checked by the same
-- conformance specs as the C stores; every read-decide-write under the
-- locks of truv.store.shdict.lock.
--
-- Layout (all under `prefix`, default "truv:"): a quota record per
-- connection key, "<prefix>q:<key>" = "<ms>:<ticket>,..." (in-window
-- entries, oldest first; an entry Truv's refusal recorded has an empty
-- ticket); a ticket counter "<prefix>qt" (dict:incr); the policy the first
-- handle recorded, "<prefix>qp"; the connection's facts (truv.quota),
-- "<prefix>f:<key>" = "<dead ms>,<alive ms>,<auth ms>,<reason>", kept 400
-- days after its last change. Nothing a quota store writes evicts
-- (`safe_add`, `safe_set`): a full dictionary fails the reserve (nil, err)
-- rather than dropping another connection's log. A quota record also
-- carries an nginx expiry (real time): two windows after its last write,
-- the dictionary forgets an idle connection by itself. Every handle on one
-- dictionary and prefix must use the same limit and window (the first
-- handle records its policy; another policy raises).
local core = require "truv.core"
local quota_mod = require "truv.quota"
local dict_mod = require "truv.store.shdict.dict"
local lock = require "truv.store.shdict.lock"

local type, error, tostring, tonumber, pairs, ipairs = type, error, tostring, tonumber, pairs,
                                                      ipairs
local setmetatable = setmetatable
local format, gmatch, match = string.format, string.gmatch, string.match
local floor = math.floor
local concat, sort = table.concat, table.sort
local argerror, finite, ms, store_error = dict_mod.argerror, dict_mod.finite, dict_mod.ms,
                                         dict_mod.error
local with_locks, owns, lost_error = lock.with_locks, lock.owns, lock.lost_error

local _M = {}

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

-- Sets `key` to `value` for `expire_s` seconds of real time without
-- evicting anything; a full dictionary is an error ("store_full") naming
-- `what` could not be held.
function Quota:_put(key, value, expire_s, what)
  local ok, err = self.dict:safe_set(key, value, expire_s)
  if not ok then
    return nil, store_error("store_full", format("the shared dictionary '%s' cannot hold the " ..
                            "%s: %s", self.name, what, tostring(err)))
  end
  return true
end

function Quota:_write(rkey, ts, tks)
  if #ts == 0 then
    self.dict:delete(rkey)
    return true
  end
  -- kept two windows of real time after the last write, then forgotten
  return self:_put(rkey, encode(ts, tks), self.expire_s, "quota record")
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
  return self:_put(fkey, encode_facts(at, old_reason), FACT_RETENTION_S, "connection's facts")
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
function _M.new(name, opts)
  local prefix, lock_wait
  opts, prefix, lock_wait = dict_mod.options("quota", opts, { limit = true, window = true,
                                                               prefix = true, lock_wait = true })
  local limit = opts.limit or quota_mod.DEFAULT_LIMIT
  local window = opts.window or quota_mod.DEFAULT_WINDOW
  if type(limit) ~= "number" or limit ~= floor(limit) or limit < 1 or limit > quota_mod.MAX_LIMIT then
    argerror("quota", 2, "'limit' must be an integer from 1 to " .. quota_mod.MAX_LIMIT)
  end
  if not finite(window) or window < 0.001 then
    argerror("quota", 2, "'window' must be a number of seconds >= 0.001")
  end
  local dict = dict_mod.open(name, "quota", "quota")
  local policy = format("%d/%.3f", limit, window)
  local ok = dict:safe_add(prefix .. "qp", policy)
  local recorded = not ok and dict:get(prefix .. "qp")
  if recorded and recorded ~= policy then
    error(format("quota: the shared dictionary '%s' (prefix '%s') holds quota kept with " ..
                 "limit/window %s, not %s", name, prefix, recorded, policy), 2)
  end
  local self = dict_mod.fields(dict, name, prefix, lock_wait)
  self.limit, self.window, self.window_ms = limit, window, ms(window)
  self.expire_s = 2 * window + 60
  setmetatable(self, Quota)
  seed_tickets(self)
  return self
end

return _M
