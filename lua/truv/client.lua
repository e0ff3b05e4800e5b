--- The Truv API client: one method per endpoint of the refresh workflow.
--
--   local client = assert(truv.new{ client_id = ..., secret = ... })
--   local order, err = client:get_order(id)
--   local order, err = client:get_order(id, { timeout_ms = 5000 })   -- per call
--
-- Every method returns the answer's document (a read-only view or plain
-- tables, see `documents`) and a `meta` table { status =, request_id = }, or
-- `nil, err` (see truv.errors). Wrong argument types and options raise, at
-- the caller's line. After client:close(), every call returns nil, err
-- (kind "invalid", code "closed").
--
-- Requests are built and answers classified in C (truv.core); a transport
-- only moves bytes. Safe calls (GET) are retried with capped exponential
-- backoff and full jitter, honouring Retry-After and Truv's "available in N
-- seconds", within an overall deadline. Billed calls (refreshes) are never
-- re-sent blindly. A 429 pauses the whole client until the cooldown ends.
--
-- Timeouts are milliseconds, as in lua-resty-http: connect_timeout_ms (the
-- TCP connect and TLS handshake), send_timeout_ms (a send that makes no
-- progress), read_timeout_ms (a wait for the next bytes of the answer) and
-- timeout_ms (the whole exchange). truv.new sets them, client:set_timeouts
-- (connect, send, read) changes them, and every method takes them in a
-- trailing options table for that call alone (for every request the call
-- makes). libcurl has no separate send and read timeouts: see truv/http.h.
--
-- Telemetry: `logger` gets events (truv.log), `on_request(info)` runs
-- before each exchange and `on_response(info)` after it (op, method, path,
-- attempt; then status, elapsed_ms, and kind and code when it failed: never
-- a header or a body), and `counters` (truv.counters) counts requests,
-- billed requests, retries, 429s, failures and routes: client:counters().
--
-- The workflows built on a client (truv.refresh, truv.wait, truv.inbox,
-- truv.renewal) use it through these methods only, never its fields:
-- client:now(), client:sleep(s) (its clock and its way of pausing: a
-- scheduler's, ngx.sleep or a blocking sleep), client:emit(level, event)
-- (its logger), client:count(name [, n]) (its counters),
-- client:backoff(attempt, err) (the pause before trying again),
-- client:refresh_setting(key) (its refresh settings) and client:options()
-- (what it was made with, to make another like it). Two fields are public,
-- to read only: client.quota (the quota store it reserves in, nil for
-- none) and client.base_url.
local core = require "truv.core"
local errors = require "truv.errors"
local options = require "truv.options"
local counters_mod = require "truv.counters"
local refresh_settings = require "truv.refresh"

local type, pairs, ipairs, error, pcall, select = type, pairs, ipairs, error, pcall, select
local setmetatable, tostring = setmetatable, tostring
local random, min, max, floor = math.random, math.min, math.max, math.floor
local format = string.format
local co_running = coroutine.running
local unpack = table.unpack or unpack   -- luacheck: ignore (5.1's global)

local _M = { _VERSION = core._VERSION }

local Client = {}
Client.__index = Client
_M.Client = Client

local DEFAULTS = {
  base_url = core.lists.defaults.base_url,                 -- the core's (truv/request.h)
  timeout_ms = core.lists.defaults.timeout_ms,             -- every transport's (truv/http.h)
  connect_timeout_ms = core.lists.defaults.connect_timeout_ms,
  retry = {
    attempts = 4,        -- tries of a safe call, the first included
    base_ms = 250,       -- first backoff ceiling
    cap_ms = 8000,       -- largest backoff
    deadline_ms = 60000, -- a safe call gives up once this much time has passed
  },
  throttle_fallback_s = { 5, 15, 30, 60 },  -- 429 without a hint: successive pauses
}

-- Truv's answers are documents: a lazy view by default where pairs() works
-- on userdata (Lua 5.2+), plain tables on LuaJIT.
local DEFAULT_DOCUMENTS = (_VERSION == "Lua 5.1") and "table" or "view"

-- error() at `level` as seen from the function calling argcheck (3: the
-- caller of a method that calls argcheck itself).
local function argcheck(cond, n, fname, msg, level)
  if not cond then
    error(format("bad argument #%d to '%s' (%s)", n, fname, msg), level)
  end
end

local function check_opt(opts, key, kind, fname)
  local v = opts[key]
  if v ~= nil and type(v) ~= kind then
    error(format("bad option '%s' to '%s' (%s expected, got %s)", key, fname, kind, type(v)), 3)
  end
  return v
end

-- Every option truv.new knows (see its comment), and the ranges of its
-- numbers. A name it does not know is a typo that would silently fall back
-- to a default: refused. The README names every one (a spec checks).
local KNOWN = {
  client_id = true, secret = true, base_url = true,
  timeout_ms = true, connect_timeout_ms = true, send_timeout_ms = true, read_timeout_ms = true,
  ca_file = true, ca_path = true, proxy = true, no_proxy = true, insecure = true,
  user_agent = true, documents = true, retry = true, transport = true, clock = true,
  sleep = true, logger = true, on_request = true, on_response = true, counters = true,
  quota = true, expiry_days = true, refresh = true, ratelimit = true, priority = true,
  billed_reuse_idle_s = true,
}
_M.OPTIONS = KNOWN
local TIMEOUT = { above = 0, max = 1e9, unit = "milliseconds" }
-- The timeouts, by option name; truv.new and every method's call options.
local TIMEOUTS = { timeout_ms = TIMEOUT, connect_timeout_ms = TIMEOUT,
                   send_timeout_ms = TIMEOUT, read_timeout_ms = TIMEOUT }
_M.CALL_OPTIONS = TIMEOUTS
-- A refresh_order reuses a kept-alive connection idle less than this many
-- seconds; 0: a fresh connection each (truv/request.h, truv_request_connection).
local BILLED_REUSE = { integer = true, min = 0, max = 3600, unit = "seconds" }
_M.BILLED_REUSE = BILLED_REUSE
local RETRY_RANGES = {
  attempts = { integer = true, min = 1, max = 100 },
  base_ms = { min = 0, max = 1e9, unit = "milliseconds" },
  cap_ms = { min = 0, max = 1e9, unit = "milliseconds" },
  deadline_ms = { min = 0, max = 1e9, unit = "milliseconds" },
}
_M.RETRY_OPTIONS = RETRY_RANGES

-- expiry_days: a number of days in range, or false for no check.
local function check_expiry(fname, name, v, level)
  if v == false then return end
  options.number(fname, name, v, refresh_settings.LIMITS.expiry_days, level + 1)
end

-- The refresh table: truv.refresh's settings, each in its range.
local function check_refresh(fname, t, level)
  options.names(fname, t, refresh_settings.DEFAULTS, level + 1, "refresh.")
  for k, r in pairs(refresh_settings.LIMITS) do
    if k == "expiry_days" then check_expiry(fname, "refresh.expiry_days", t[k], level + 1)
    elseif not (t[k] == false and r.otherwise == "false") then
      options.number(fname, "refresh." .. k, t[k], r, level + 1)
    end
  end
  refresh_settings.check_settings(fname, t, level + 1, "refresh.")
end

-- no_proxy: hosts that bypass the proxy, as a comma-separated string or a
-- list of strings; returned as the list.
local function check_no_proxy(fname, v, level)
  if v == nil then return nil end
  local list = {}
  if type(v) == "string" then
    for h in v:gmatch("[^,%s]+") do list[#list + 1] = h end
    return list
  end
  local ok = type(v) == "table"
  for _, h in ipairs(ok and v or {}) do ok = ok and type(h) == "string" and h ~= "" end
  if not ok then
    error(format("bad option 'no_proxy' to '%s' (a comma-separated string or a list of host " ..
                 "names expected)", fname), level + 1)
  end
  for i, h in ipairs(v) do list[i] = h end
  return list
end

--- The options of the libcurl transport of a client made with `opts`
-- (core.http's; core.multi takes them too): a transport made for a client
-- elsewhere, such as the multi of truv.renewal's scheduler, connects as the
-- client's own would (its CAs, its proxy, its billed_reuse_idle_s). `opts`
-- as truv.new takes them (no_proxy a string or a list).
function _M.transport_options(opts)
  local no_proxy = opts.no_proxy
  if type(no_proxy) == "table" then no_proxy = table.concat(no_proxy, ",") end
  return {
    timeout_ms = opts.timeout_ms,
    connect_timeout_ms = opts.connect_timeout_ms,
    send_timeout_ms = opts.send_timeout_ms,
    read_timeout_ms = opts.read_timeout_ms,
    ca_file = opts.ca_file,
    ca_path = opts.ca_path,
    proxy = opts.proxy,
    no_proxy = no_proxy,
    insecure = opts.insecure,
    billed_reuse_idle_s = opts.billed_reuse_idle_s,
  }
end

--- The transport used outside nginx: libcurl, one connection pool per client.
local function curl_transport(opts)
  return core.http(_M.transport_options(opts))
end

local function pick_transport(opts)
  local t = opts.transport
  if type(t) == "table" or type(t) == "userdata" then return t end
  if t == nil and ngx and ngx.get_phase then t = "cosocket" end
  if t == "cosocket" then
    local cosocket = require "truv.transport.cosocket"
    return cosocket.new(opts)
  end
  if t ~= nil and t ~= "curl" then
    return nil, errors.new("invalid", "transport", "unknown transport '" .. tostring(t) .. "'")
  end
  return curl_transport(opts)
end

-- Refresh settings (truv.refresh DEFAULTS): the `refresh` table, and the
-- common `expiry_days` (a number of days to opt in to refusing old
-- connections, or false).
local function refresh_settings_of(opts)
  local d = {}
  for k, v in pairs(opts.refresh or {}) do d[k] = v end
  if opts.expiry_days ~= nil then d.expiry_days = opts.expiry_days end
  return d
end

-- The retry settings, the user's (checked by new) over the defaults.
local function merge_retry(user)
  local r = {}
  for k, v in pairs(DEFAULTS.retry) do r[k] = v end
  for k, v in pairs(user or {}) do r[k] = v end
  return r
end

--- truv.new(opts) -> client | nil, err
-- opts: client_id, secret (required); base_url; timeout_ms;
-- connect_timeout_ms; send_timeout_ms; read_timeout_ms; ca_file; ca_path;
-- proxy; no_proxy; insecure; billed_reuse_idle_s (a refresh_order reuses a
-- kept-alive connection idle less than this many seconds, never sent twice
-- on it; 0: a fresh connection each; default 4); user_agent; documents ("view"|"table"); retry
-- { attempts, base_ms, cap_ms, deadline_ms }; transport ("curl",
-- "cosocket" or an object with :perform(request, now, mode)); clock
-- (function -> epoch seconds); sleep (function(seconds)); logger
-- (function(level, event), see truv.log); on_request, on_response
-- (function(info)); counters (truv.counters: a new one per client by
-- default); quota (a quota store, "memory", a SQLite file path, or false
-- for none; absent: in memory, with a warning in the log; a path that
-- cannot be opened fails new; it keeps the connection facts too; see
-- truv.quota.from_option and client:describe()); expiry_days (opt-in:
-- refuse connections last authenticated more than this many days ago;
-- default false); refresh { refuse_dead, expiring_days, oauth_providers,
-- settle_s, clock_skew_s, max_sends } (see truv.refresh); ratelimit (a
-- fleet-wide rate budget, truv.ratelimit: every request first takes a
-- slot, and a 429 pauses every process that shares it) with priority
-- ("interactive", the default, or "batch").
function _M.new(opts)
  argcheck(type(opts) == "table", 1, "new", "table expected, got " .. type(opts), 3)
  options.names("new", opts, KNOWN, 2)
  if opts.priority ~= nil and opts.priority ~= "interactive" and opts.priority ~= "batch" then
    error("bad option 'priority' to 'new' (\"interactive\" or \"batch\" expected)", 2)
  end
  for _, k in ipairs{ "client_id", "secret", "base_url", "user_agent", "ca_file", "ca_path",
                      "proxy", "documents" } do
    check_opt(opts, k, "string", "new")
  end
  options.numbers("new", opts, TIMEOUTS, 2)
  options.number("new", "billed_reuse_idle_s", opts.billed_reuse_idle_s, BILLED_REUSE, 2)
  for _, k in ipairs{ "clock", "sleep", "logger", "on_request", "on_response" } do
    check_opt(opts, k, "function", "new")
  end
  -- a string "false" or a 0 would be true: TLS verification is off only for true
  options.boolean("new", "insecure", opts.insecure, 2)
  if check_opt(opts, "retry", "table", "new") then
    options.names("new", opts.retry, RETRY_RANGES, 2, "retry.")
    options.numbers("new", opts.retry, RETRY_RANGES, 2, "retry.")
  end
  if check_opt(opts, "refresh", "table", "new") then check_refresh("new", opts.refresh, 2) end
  check_expiry("new", "expiry_days", opts.expiry_days, 2)
  local no_proxy = check_no_proxy("new", opts.no_proxy, 2)
  local q = opts.quota
  if q ~= nil and q ~= false and type(q) ~= "table" and type(q) ~= "userdata"
     and type(q) ~= "string" then
    error("bad option 'quota' to 'new' (a quota store, \"memory\", a file path or false " ..
          "expected, got " .. type(q) .. ")", 2)
  end
  if opts.counters ~= nil and not counters_mod.is(opts.counters) then
    error("bad option 'counters' to 'new' (a counters object (truv.counters) expected, got " ..
          type(opts.counters) .. ")", 2)
  end

  local missing = {}
  if not opts.client_id or opts.client_id == "" then
    missing[#missing + 1] = { field = "client_id", message = "is required" }
  end
  if not opts.secret or opts.secret == "" then
    missing[#missing + 1] = { field = "secret", message = "is required" }
  end
  if #missing > 0 then return nil, errors.invalid(missing, "missing credentials") end
  local documents = opts.documents or DEFAULT_DOCUMENTS
  if documents ~= "view" and documents ~= "table" then
    return nil, errors.invalid({ { field = "documents", message = "must be view or table" } })
  end

  local base_url = opts.base_url or DEFAULTS.base_url
  if not base_url:match("/$") then base_url = base_url .. "/" end
  -- the timeouts the caller set: stamped on each request (the transport
  -- keeps its own, or these, for the others)
  local timeouts = {
    connect_ms = opts.connect_timeout_ms, send_ms = opts.send_timeout_ms,
    read_ms = opts.read_timeout_ms, total_ms = opts.timeout_ms,
  }
  local transport, err = pick_transport{
    transport = opts.transport,
    timeout_ms = opts.timeout_ms or DEFAULTS.timeout_ms,
    connect_timeout_ms = opts.connect_timeout_ms or DEFAULTS.connect_timeout_ms,
    send_timeout_ms = opts.send_timeout_ms, read_timeout_ms = opts.read_timeout_ms,
    ca_file = opts.ca_file, ca_path = opts.ca_path, proxy = opts.proxy, no_proxy = no_proxy,
    insecure = opts.insecure, billed_reuse_idle_s = opts.billed_reuse_idle_s,
  }
  if not transport then return nil, err end

  -- the refresh quota (truv.quota.from_option): a store that cannot be
  -- opened fails the client rather than leaving it with another one
  local quota, where, qerr = require("truv.quota").from_option(opts.quota,
                                                              { client_id = opts.client_id })
  if qerr then
    if transport.close then transport:close() end
    return nil, qerr
  end

  local self = setmetatable({
    _config = {
      client_id = opts.client_id,
      secret = opts.secret,
      base_url = base_url,
      user_agent = opts.user_agent,
    },
    _transport = transport,
    _documents = documents,
    _retry = merge_retry(opts.retry),
    _timeouts = timeouts,
    _clock = opts.clock or (ngx and ngx.now) or core.now,
    _sleep = opts.sleep or (ngx and ngx.sleep) or core.sleep,
    _log = opts.logger,
    _on_request = opts.on_request,
    _on_response = opts.on_response,
    _counters = opts.counters or counters_mod.memory(),
    _cooldown_until = 0,
    _throttle_streak = 0,
    _ratelimit = opts.ratelimit,
    _priority = opts.priority,
    quota = quota,
    base_url = base_url,
    _options = opts,          -- client:options()
    _refreshing = {},         -- order ids with a refresh in progress on this client
    _refresh = refresh_settings_of(opts),   -- client:refresh_setting()
    _stores = { quota = where },
    _transport_kind = type(opts.transport) == "string" and opts.transport
                      or (opts.transport == nil and (ngx and ngx.get_phase and "cosocket" or "curl"))
                      or "custom",
  }, Client)
  -- what this client bills against, said once: a quota nobody chose (the
  -- default, lost with the process and private to it) is a warning, since
  -- an absent option cannot be told from a store that failed to open and
  -- came back nil (quota = truv.quota.sqlite(path) without assert)
  if where.default then
    self:emit("warn", { event = "quota_default", message = "the refresh quota is kept in " ..
      "this process's memory (no quota option): it is lost when the process ends and not " ..
      "shared with other processes; pass quota = \"memory\" to choose it, or a store or a " ..
      "file path for a durable one" })
  end
  self:emit("info", { event = "client", base_url = base_url, transport = self._transport_kind,
                      quota = where.kind, quota_path = where.path })
  return self
end

--- What this client works with, for a log line or a health check:
-- { base_url =, transport = "curl" | "cosocket" | "custom",
--   quota = { kind = "memory" | "sqlite" | "shdict" | "none" | ..., path =,
--             default = true when no quota option was given } }.
function Client:describe()
  local q = self._stores.quota
  return { base_url = self.base_url, transport = self._transport_kind,
           quota = { kind = q.kind, path = q.path, default = q.default or false } }
end

--- Closes the client: its transport's connections are released, and every
-- call made afterwards returns nil, err (kind "invalid", code "closed").
function Client:close()
  if self._closed then return true end
  self._closed = true
  if self._transport and self._transport.close then self._transport:close() end
  return true
end

local function closed_error(op)
  return errors.new("invalid", "closed", "this client is closed (client:close() was called)",
                    { op = op })
end

--- The client's clock: epoch seconds with a fraction (its `clock` option).
function Client:now()
  return self._clock()
end

--- Pauses the calling workflow for `seconds` the client's way (its `sleep`
-- option: a scheduler's, which lets the other workflows run; ngx.sleep in
-- nginx; else a blocking sleep).
function Client:sleep(seconds)
  argcheck(type(seconds) == "number" and seconds >= 0 and seconds < math.huge, 1, "sleep",
           "seconds >= 0 expected, got " .. tostring(seconds), 3)
  return self._sleep(seconds)
end

--- A copy of the options the client was made with (truv.new's), to make
-- another client like it (a batch's, over its own transport).
function Client:options()
  local o = {}
  for k, v in pairs(self._options) do o[k] = v end
  return o
end

--- The client's own value of refresh setting `key` (truv.refresh's
-- DEFAULTS: its `refresh` option, and expiry_days), or nil when it was
-- not given: truv.refresh then uses its default.
function Client:refresh_setting(key)
  argcheck(type(key) == "string", 1, "refresh_setting", "setting name expected, got " ..
           type(key), 3)
  return self._refresh[key]
end

--- client:set_timeouts(connect_ms, send_ms, read_ms): the client's timeouts
-- from now on, in milliseconds (> 0; nil keeps the current one). The whole
-- exchange stays bounded by timeout_ms.
function Client:set_timeouts(connect_ms, send_ms, read_ms)
  local given = { connect_ms, send_ms, read_ms }
  for i = 1, 3 do
    local v = given[i]
    argcheck(v == nil or options.in_range(v, TIMEOUT), i, "set_timeouts",
             options.range_text(TIMEOUT) .. " (milliseconds) or nil expected, got " ..
             (type(v) == "number" and format("%.14g", v) or type(v)), 3)
  end
  local t = self._timeouts
  t.connect_ms = connect_ms or t.connect_ms
  t.send_ms = send_ms or t.send_ms
  t.read_ms = read_ms or t.read_ms
  return true
end

--- The client's counters as a table (see truv.counters: requests, billed,
-- retries, throttled, errors, routes = { [route] = n }). Clients that share
-- a counters object read the same numbers.
function Client:counters()
  return counters_mod.table(self._counters:snapshot())
end

--- Hands an event (a table: `event` names it) to the client's logger at
-- `level` ("debug", "info", "warn", "error"; see truv.log). Never given a
-- secret: a request's path, a status, an error's (already redacted) text.
-- A logger that raises is ignored: logging must never lose an answer (a
-- billed one least of all).
local LEVELS = { debug = true, info = true, warn = true, error = true }

function Client:emit(level, event)
  argcheck(LEVELS[level], 1, "emit", "\"debug\", \"info\", \"warn\" or \"error\" expected, got "
           .. tostring(level), 3)
  argcheck(type(event) == "table", 2, "emit", "table expected, got " .. type(event), 3)
  local log = self._log
  if log then pcall(log, level, event) end
end

--- Adds n (default 1) to a counter (truv.counters' names); a counters
-- store that fails is logged, never raised: counting must not lose an
-- answer.
function Client:count(name, n)
  argcheck(type(name) == "string", 1, "count", "counter name expected, got " .. type(name), 3)
  argcheck(n == nil or type(n) == "number", 2, "count", "number expected, got " .. type(n), 3)
  local ok, err = pcall(self._counters.incr, self._counters, name, n)
  if not ok then
    self:emit("warn", { event = "counters_failed", counter = name, error = tostring(err) })
  end
end

--- Counts the route an outcome of this client's workflow took.
function Client:_count_route(decision)
  if decision and decision.route then self:count("route:" .. decision.route) end
end

-- A telemetry hook runs protected: what it raises is logged, and the call
-- goes on (a hook must never lose a billed answer).
function Client:_hook(name, fn, info)
  local ok, err = pcall(fn, info)
  if not ok then self:emit("warn", { event = "hook_failed", hook = name, error = tostring(err) }) end
end

-- ------------------------------------------------------ per-call options

-- The per-call timeouts in force, by thread (a coroutine, an nginx light
-- thread): nested requests of one call (a refresh reads the order first)
-- get its timeouts, other threads sharing the client do not.
local CALLS = setmetatable({}, { __mode = "k" })
local MAIN = {}   -- LuaJIT's main thread is not a coroutine object

-- The timeouts a call's options set (nil when none), checked; raises at
-- the caller of the method (level 3 from here). `names`: every option the
-- method takes (nil: only timeouts are checked, other names pass through).
local function call_timeouts(opts, n, fname, names)
  if opts == nil then return nil end
  argcheck(type(opts) == "table", n, fname, "table expected, got " .. type(opts), 4)
  if names then options.names(fname, opts, names, 3) end
  options.numbers(fname, opts, TIMEOUTS, 3)
  if opts.timeout_ms or opts.connect_timeout_ms or opts.send_timeout_ms or opts.read_timeout_ms then
    return { total_ms = opts.timeout_ms, connect_ms = opts.connect_timeout_ms,
             send_ms = opts.send_timeout_ms, read_ms = opts.read_timeout_ms }
  end
end

local function pack(...)
  return { n = select("#", ...), ... }
end

--- Runs fn(...) with the call's timeouts in force (over those of an
-- enclosing call on the same thread).
local function with_timeouts(t, fn, ...)
  if not t then return fn(...) end
  local key = co_running() or MAIN
  local outer = CALLS[key]
  local merged = {}
  for k, v in pairs(outer or {}) do merged[k] = v end
  for k, v in pairs(t) do merged[k] = v end
  CALLS[key] = merged
  local r = pack(pcall(fn, ...))
  CALLS[key] = outer
  if not r[1] then error(r[2], 0) end
  return unpack(r, 2, r.n)
end

-- The timeouts a request gets: those the caller set for the client, under
-- those of the call; nil leaves the transport's.
function Client:_timeouts_for()
  local t = self._timeouts
  local c = CALLS[co_running() or MAIN]
  if not c then return t.connect_ms, t.send_ms, t.read_ms, t.total_ms end
  return c.connect_ms or t.connect_ms, c.send_ms or t.send_ms, c.read_ms or t.read_ms,
         c.total_ms or t.total_ms
end

--- Waits out a 429 cooldown that any earlier call started.
function Client:_wait_cooldown()
  local wait = self._cooldown_until - self._clock()
  if wait > 0 then
    self:emit("info", { event = "cooldown", seconds = wait })
    self:sleep(wait)
  end
end

function Client:_note_throttle(err)
  local now = self._clock()
  local until_t = err.retry_at
  if not until_t then
    local steps = DEFAULTS.throttle_fallback_s
    self._throttle_streak = min(self._throttle_streak + 1, #steps)
    until_t = now + steps[self._throttle_streak]
    err.retry_at = until_t
  end
  if until_t > self._cooldown_until then self._cooldown_until = until_t end
  -- the whole fleet waits it out (a failure to say so is the limiter's to report)
  if self._ratelimit then self._ratelimit:cooldown(max(0, until_t - now)) end
end

--- One exchange: wait out a cooldown, send, classify.
function Client:_exchange(req, op, attempt, mode)
  self:_wait_cooldown()
  if self._ratelimit then
    -- a slot of the fleet's budget first: nothing is sent without one
    local ok, rerr = self._ratelimit:wait(self._priority, self._sleep)
    if not ok then
      rerr.op = op
      return nil, rerr
    end
  end
  if req.set_timeouts then req:set_timeouts(self:_timeouts_for()) end
  local on_request, on_response = self._on_request, self._on_response
  if on_request then
    self:_hook("on_request", on_request,
               { op = op, method = req.method, path = req.path, attempt = attempt })
  end
  self:count("requests")
  if req.billed then self:count("billed") end
  local started = self._clock()
  local doc, meta = self._transport:perform(req, started, mode or self._documents)
  local elapsed_ms = floor((self._clock() - started) * 1000 + 0.5)
  if doc then
    self._throttle_streak = 0
    if on_response then
      self:_hook("on_response", on_response,
                 { op = op, method = req.method, path = req.path, attempt = attempt,
                   status = meta.status, elapsed_ms = elapsed_ms })
    end
    self:emit("debug", { event = "response", op = op, path = req.path, status = meta.status,
                         request_id = meta.request_id, attempt = attempt,
                         elapsed_ms = elapsed_ms })
    return doc, meta
  end
  local err = meta
  err.op = op
  self:count("errors")
  if err.kind == "throttled" then
    if err.status == 429 then self:count("throttled") end
    self:_note_throttle(err)
  end
  if on_response then
    self:_hook("on_response", on_response,
               { op = op, method = req.method, path = req.path, attempt = attempt,
                 status = err.status, elapsed_ms = elapsed_ms, kind = err.kind, code = err.code })
  end
  self:emit("warn", { event = "error", op = op, path = req.path, status = err.status,
                      kind = err.kind, code = err.code, request_id = err.request_id,
                      attempt = attempt, elapsed_ms = elapsed_ms, error = tostring(err) })
  return nil, err
end

local function retryable(err)
  local k = err.kind
  return k == "network" or k == "server" or k == "throttled"
      or (k == "protocol" and err.code == "malformed_json")
end
_M.retryable = retryable

--- How long to wait, in seconds, before trying again after try number
-- `attempt` failed with `err`: the server's own hint (err.retry_at), else
-- full-jitter backoff within the client's retry settings.
function Client:backoff(attempt, err, now)
  argcheck(type(attempt) == "number" and attempt >= 1 and attempt % 1 == 0, 1, "backoff",
           "try number >= 1 expected, got " .. tostring(attempt), 3)
  argcheck(type(err) == "table", 2, "backoff", "an error expected, got " .. type(err), 3)
  argcheck(now == nil or type(now) == "number", 3, "backoff", "number expected, got " ..
           type(now), 3)
  if err.retry_at then return max(0, err.retry_at - (now or self._clock())) end
  local r = self._retry
  local ceiling = min(r.cap_ms, r.base_ms * 2 ^ (attempt - 1)) / 1000
  return random() * ceiling
end

--- Sends a built request. Safe requests retry; others are sent once (the
-- refresh workflow decides what an ambiguous failure of a billed request
-- means, see truv.refresh). `mode` overrides the client's documents setting
-- for this answer ("view", "table", or "model" for an order's model only).
function Client:send(req, mode)
  argcheck(type(req) == "userdata", 1, "send", "a request (client:build) expected, got " ..
           type(req), 3)
  argcheck(mode == nil or type(mode) == "string", 2, "send", "string expected, got " ..
           type(mode), 3)
  local op = req.op
  if self._closed then return nil, closed_error(op) end
  if not req.safe then return self:_exchange(req, op, 1, mode) end
  local r = self._retry
  local deadline = self._clock() + r.deadline_ms / 1000
  local attempt = 1
  while true do
    local doc, meta = self:_exchange(req, op, attempt, mode)
    if doc then return doc, meta end
    local err = meta
    if not retryable(err) or attempt >= r.attempts then return nil, err end
    local now = self._clock()
    local wait = self:backoff(attempt, err, now)
    if now + wait > deadline then return nil, err end
    self:emit("info", { event = "retry", op = op, path = req.path, attempt = attempt,
                        wait_s = wait, kind = err.kind })
    self:count("retries")
    if wait > 0 and err.kind ~= "throttled" then self:sleep(wait) end
    attempt = attempt + 1
  end
end

local function check_build(op, id, params, facts, fname)
  argcheck(type(op) == "string", 1, fname, "operation name expected, got " .. type(op), 4)
  argcheck(id == nil or type(id) == "string", 2, fname, "string expected, got " .. type(id), 4)
  argcheck(params == nil or type(params) == "table", 3, fname,
           "table expected, got " .. type(params), 4)
  argcheck(facts == nil or type(facts) == "table", 4, fname,
           "table expected, got " .. type(facts), 4)
  argcheck(core.ops[op] ~= nil, 1, fname,
           "unknown operation '" .. op .. "'", 4)
end

--- Builds a request; returns it or nil, err ("invalid", nothing sent).
function Client:build(op, id, params, facts)
  check_build(op, id, params, facts, "build")
  local req, err = core.build(self._config, op, id, params, facts)
  if not req then err.op = op end
  return req, err
end

function Client:call(op, id, params, facts, mode)
  check_build(op, id, params, facts, "call")
  local req, err = self:build(op, id, params, facts)
  if not req then return nil, err end
  return self:send(req, mode)
end

--- The products of an order document, as a plain list.
local function products_of(order)
  local list = {}
  local p = order and order.products
  if p then
    for i = 1, #p do list[i] = p[i] end
  end
  return list
end
_M.products_of = products_of

-- ---------------------------------------------------------------- methods
--
-- Each method checks its arguments first (raising at the caller's line:
-- the checks below raise at level 4, from a helper called by the method),
-- then answers nil, err on a closed client, then runs with the call's
-- timeouts in force.

local function check_id(id, n, fname)
  argcheck(type(id) == "string", n, fname, "string expected, got " .. type(id), 4)
end

local function check_table(t, n, fname, optional)
  argcheck(type(t) == "table" or (optional and t == nil), n, fname,
           "table expected, got " .. type(t), 4)
end

-- Options of a call that only sends: its timeouts.
local PLAIN = TIMEOUTS
-- Options of the list methods.
local LIST = { all = true, max_pages = true }
for k in pairs(TIMEOUTS) do LIST[k] = true end
local MAX_PAGES = { integer = true, min = 1, max = 1000 }

--- POST orders/: a new order (first_name, last_name, products, ...).
function Client:create_order(params, opts)
  check_table(params, 1, "create_order")
  local t = call_timeouts(opts, 2, "create_order", PLAIN)
  if self._closed then return nil, closed_error("create_order") end
  return with_timeouts(t, self.call, self, "create_order", nil, params)
end

--- GET orders/{id}/
function Client:get_order(id, opts)
  check_id(id, 1, "get_order")
  local t = call_timeouts(opts, 2, "get_order", PLAIN)
  if self._closed then return nil, closed_error("get_order") end
  return with_timeouts(t, self.call, self, "get_order", id)
end

--- GET orders/{id}/, keeping only the order's model (truv.core.order_model:
-- id, products, statuses, connections with their tokens): the document is
-- freed as soon as it is read, for loops that need no more than that.
function Client:get_order_model(id, opts)
  check_id(id, 1, "get_order_model")
  local t = call_timeouts(opts, 2, "get_order_model", PLAIN)
  if self._closed then return nil, closed_error("get_order") end
  return with_timeouts(t, self.call, self, "get_order", id, nil, nil, "model")
end

-- Every page of a list (Truv's lists page with ?page=N and `next`), at
-- most max_pages of them: { count =, results = { ... } } as plain tables.
function Client:_all_pages(op, id, query, max_pages)
  local all, page, q = {}, 1, {}
  for k, v in pairs(query or {}) do q[k] = v end
  while true do
    q.page = page
    local doc, meta = self:call(op, id, q)
    if not doc then return nil, meta end
    local results = doc.results or doc
    for i = 1, #results do all[#all + 1] = core.totable(results[i]) end
    if type(doc.next) ~= "string" or #results == 0 or page >= max_pages then
      return { count = #all, results = all }, meta
    end
    page = page + 1
  end
end

-- A list call: one page, or every page with opts.all.
function Client:_list(op, id, query, opts, default_pages)
  if not (opts and opts.all) then return self:call(op, id, query) end
  return self:_all_pages(op, id, query, opts.max_pages or default_pages)
end

--- GET orders/{id}/events/ (one page; `query` may hold page, page_size and
-- any filter Truv accepts). With opts.all, every page (at most
-- opts.max_pages, default 1000) and the result is { count =, results =
-- { ... } } as plain tables.
function Client:list_order_events(id, query, opts)
  check_id(id, 1, "list_order_events")
  check_table(query, 2, "list_order_events", true)
  local t = call_timeouts(opts, 3, "list_order_events", LIST)
  if opts then options.number("list_order_events", "max_pages", opts.max_pages, MAX_PAGES, 2) end
  if self._closed then return nil, closed_error("list_order_events") end
  return with_timeouts(t, self._list, self, "list_order_events", id, query, opts, 1000)
end

--- GET tasks/ (one page; `query` holds user_id, page and any filter Truv
-- accepts): a user's tasks with their status and error_message, as Truv's
-- demo applications read them to learn why a connection failed. With
-- opts.all, every page (at most opts.max_pages, default 20) as
-- { count =, results = { ... } } in plain tables.
function Client:list_tasks(query, opts)
  check_table(query, 1, "list_tasks", true)
  local t = call_timeouts(opts, 2, "list_tasks", LIST)
  if opts then options.number("list_tasks", "max_pages", opts.max_pages, MAX_PAGES, 2) end
  if self._closed then return nil, closed_error("list_tasks") end
  return with_timeouts(t, self._list, self, "list_tasks", nil, query, opts, 20)
end

--- GET tasks/{id}/: one task (status, link_id, error_message, created_at, ...).
function Client:get_task(id, opts)
  check_id(id, 1, "get_task")
  local t = call_timeouts(opts, 2, "get_task", PLAIN)
  if self._closed then return nil, closed_error("get_task") end
  return with_timeouts(t, self.call, self, "get_task", id)
end

--- POST refresh/tasks/ { access_token, product_type }: billed, inside the
-- quota, sent once (see truv.refresh).
function Client:create_refresh_task(params, opts)
  check_table(params, 1, "create_refresh_task")
  local t = call_timeouts(opts, 2, "create_refresh_task", PLAIN)
  if self._closed then return nil, closed_error("create_refresh_task") end
  return with_timeouts(t, refresh_settings.refresh_task, self, params)
end

--- GET refresh/tasks/{id}/
function Client:get_refresh_task(id, opts)
  check_id(id, 1, "get_refresh_task")
  local t = call_timeouts(opts, 2, "get_refresh_task", PLAIN)
  if self._closed then return nil, closed_error("get_refresh_task") end
  return with_timeouts(t, self.call, self, "get_refresh_task", id)
end

--- POST users/{user_id}/tokens/ { product_type, access_token = <link's> }:
-- a bridge token; with an access_token Bridge opens in update mode.
function Client:create_bridge_token(user_id, params, opts)
  check_id(user_id, 1, "create_bridge_token")
  check_table(params, 2, "create_bridge_token")
  local t = call_timeouts(opts, 3, "create_bridge_token", PLAIN)
  if self._closed then return nil, closed_error("create_bridge_token") end
  return with_timeouts(t, self.call, self, "create_bridge_token", user_id, params)
end

-- refresh_order's own options: the refresh settings (truv.refresh) for this
-- call, and what the workflow takes. Raises at `level` (as for error()).
local function check_refresh_options(fname, opts, level)
  if opts == nil then return end
  for k, r in pairs(refresh_settings.LIMITS) do
    if k == "expiry_days" then check_expiry(fname, k, opts[k], level + 1)
    elseif not (opts[k] == false and r.otherwise == "false") then
      options.number(fname, k, opts[k], r, level + 1)
    end
  end
  refresh_settings.check_settings(fname, opts, level + 1)
  options.boolean(fname, "partial", opts.partial, level + 1)
  local a = opts.answer
  if a ~= nil and a ~= "view" and a ~= "table" and a ~= "model" then
    error("bad option 'answer' to '" .. fname .. "' (\"view\", \"table\" or \"model\" " ..
          "expected)", level + 1)
  end
  if opts.before_send ~= nil and type(opts.before_send) ~= "function" then
    error("bad option 'before_send' to '" .. fname .. "' (function expected, got " ..
          type(opts.before_send) .. ")", level + 1)
  end
  local f = opts.own_failure
  if f ~= nil and not (type(f) == "table" and type(f.status) == "string"
                       and type(f.from) == "number" and type(f.to) == "number") then
    error("bad option 'own_failure' to '" .. fname .. "' ({ status = string, from = number, " ..
          "to = number } expected)", level + 1)
  end
  local o = opts.order
  if o ~= nil and type(o) ~= "table" and type(o) ~= "userdata" then
    error("bad option 'order' to '" .. fname .. "' (the original order's document or model " ..
          "expected, got " .. type(o) .. ")", level + 1)
  end
end

-- refresh_order's outcome, its failure routed and counted. One refresh of
-- an order at a time on a client: coroutines and nginx light threads share
-- it, and the order is marked before anything that may yield (reading the
-- order, a quota store's lock).
local function refresh_counted(self, id, params, opts)
  local refreshing = self._refreshing
  if refreshing[id] then
    return nil, errors.new("invalid", "refresh_in_progress",
      "a refresh of this order is already in progress on this client", { op = "refresh_order" })
  end
  refreshing[id] = true
  local ok, doc, meta = pcall(refresh_settings.refresh_order, self, id, params, opts)
  refreshing[id] = nil
  if not ok then error(doc, 0) end
  if not doc and errors.is(meta) then self:_count_route(require("truv.route").route(meta)) end
  return doc, meta
end

--- POST orders/{id}/: refresh an order (billed, sent once).
-- params: products (exactly one), employers / financial_accounts
-- ({ {id=} | {suborder_number=} }), manager, email, phone,
-- include_recent_paystub, reports = { voa = {...} }.
-- opts.order: the original order's document, if the caller has it (saves a
-- GET); otherwise it is fetched, so that the product rule (income ->
-- income|employment, employment -> employment) is checked before sending.
-- opts.not_within (seconds): an order refreshed less than that ago is
-- answered with that refresh (meta.recent), nothing sent; opts.own_refresh,
-- opts.own_failure, opts.partial, opts.answer, opts.before_send, opts.admit:
-- see truv.refresh;
-- and the refresh settings (truv.refresh) and the call's timeouts.
function Client:refresh_order(id, params, opts)
  check_id(id, 1, "refresh_order")
  check_table(params, 2, "refresh_order")
  local t = call_timeouts(opts, 3, "refresh_order")
  check_refresh_options("refresh_order", opts, 2)
  if self._closed then return nil, closed_error("refresh_order") end
  return with_timeouts(t, refresh_counted, self, id, params, opts or {})
end

-- wait_for_refresh's result, its route counted.
local function wait_counted(self, order, opts)
  local result, err = require("truv.wait").wait_for_refresh(self, order, opts)
  if result then self:_count_route(result.decision) end
  return result, err
end

--- Polls a refresh order until it is finished (see truv.wait; opts.timeout_s
-- bounds the wait, the call's timeouts each request).
function Client:wait_for_refresh(order, opts)
  argcheck(type(order) == "string" or type(order) == "table" or type(order) == "userdata", 1,
           "wait_for_refresh", "order id or document expected, got " .. type(order), 3)
  local t = call_timeouts(opts, 2, "wait_for_refresh")
  if opts then
    local wait = require "truv.wait"
    options.numbers("wait_for_refresh", opts, wait.LIMITS, 2)
    if opts.router ~= nil and type(opts.router) ~= "table" then
      error("bad option 'router' to 'wait_for_refresh' (a router (truv.router) expected, got " ..
            type(opts.router) .. ")", 2)
    end
  end
  if self._closed then return nil, closed_error("wait_for_refresh") end
  return with_timeouts(t, wait_counted, self, order, opts)
end

--- What the user needs to reconnect (see truv.reverify).
function Client:reverify(order, opts)
  argcheck(type(order) == "table" or type(order) == "userdata" or type(order) == "string", 1,
           "reverify", "order document expected, got " .. type(order), 3)
  local t = call_timeouts(opts, 2, "reverify")
  local reverify = require "truv.reverify"
  reverify.check_options(opts, "reverify", 3)
  if self._closed then return nil, closed_error("reverify") end
  return with_timeouts(t, reverify.reverify, self, order, opts)
end

_M.DEFAULTS = DEFAULTS
return _M
