--- The Truv API client: one method per endpoint of the refresh workflow.
--
--   local client = assert(truv.new{ client_id = ..., secret = ... })
--   local order, err = client:get_order(id)
--
-- Every method returns the answer's document (a read-only view or plain
-- tables, see `documents`) and a `meta` table { status =, request_id = }, or
-- `nil, err` (see truv.errors). Wrong argument types raise.
--
-- Requests are built and answers classified in C (truv.core); a transport
-- only moves bytes. Safe calls (GET) are retried with capped exponential
-- backoff and full jitter, honouring Retry-After and Truv's "available in N
-- seconds", within an overall deadline. Billed calls (refreshes) are never
-- re-sent blindly. A 429 pauses the whole client until the cooldown ends.
local core = require "truv.core"
local errors = require "truv.errors"
local options = require "truv.options"
local refresh_settings = require "truv.refresh"

local type, pairs, ipairs, error = type, pairs, ipairs, error
local setmetatable, tostring = setmetatable, tostring
local random, min, max, floor = math.random, math.min, math.max, math.floor
local format = string.format

local _M = { _VERSION = core._VERSION }

local Client = {}
Client.__index = Client
_M.Client = Client

local DEFAULTS = {
  base_url = "https://prod.truv.com/v1/",
  timeout_ms = 30000,
  connect_timeout_ms = 10000,
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

local function argcheck(cond, n, fname, msg)
  if not cond then
    error(format("bad argument #%d to '%s' (%s)", n, fname, msg), 3)
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
-- to a default: refused.
local KNOWN = {
  client_id = true, secret = true, base_url = true, timeout_ms = true,
  connect_timeout_ms = true, ca_file = true, ca_path = true, proxy = true, insecure = true,
  user_agent = true, documents = true, retry = true, transport = true, clock = true,
  sleep = true, logger = true, quota = true, expiry_days = true, refresh = true,
}
local TIMEOUT = { above = 0, max = 1e9, unit = "milliseconds" }
local RANGES = { timeout_ms = TIMEOUT, connect_timeout_ms = TIMEOUT }
local RETRY_RANGES = {
  attempts = { integer = true, min = 1, max = 100 },
  base_ms = { min = 0, max = 1e9, unit = "milliseconds" },
  cap_ms = { min = 0, max = 1e9, unit = "milliseconds" },
  deadline_ms = { min = 0, max = 1e9, unit = "milliseconds" },
}

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

--- The transport used outside nginx: libcurl, one connection pool per client.
local function curl_transport(opts)
  return core.http{
    timeout_ms = opts.timeout_ms,
    connect_timeout_ms = opts.connect_timeout_ms,
    ca_file = opts.ca_file,
    ca_path = opts.ca_path,
    proxy = opts.proxy,
    insecure = opts.insecure,
  }
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
local function refresh_defaults(opts)
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
-- opts: client_id, secret (required); base_url; timeout_ms; connect_timeout_ms;
-- ca_file; ca_path; proxy; insecure; user_agent; documents ("view"|"table");
-- retry { attempts, base_ms, cap_ms, deadline_ms }; transport ("curl",
-- "cosocket" or an object with :perform(request, now, mode)); clock
-- (function -> epoch seconds); sleep (function(seconds)); logger
-- (function(level, event)); quota (a quota store, "memory", a SQLite file
-- path, or false for none; absent: in memory, with a warning in the log;
-- a path that cannot be opened fails new; it keeps the connection facts
-- too; see truv.quota.from_option and client:describe()); expiry_days
-- (opt-in: refuse connections last authenticated more than this many days
-- ago; default false); refresh { refuse_dead, expiring_days,
-- oauth_providers, settle_s, clock_skew_s, max_sends } (see truv.refresh).
function _M.new(opts)
  argcheck(type(opts) == "table", 1, "new", "table expected, got " .. type(opts))
  options.names("new", opts, KNOWN, 2)
  for _, k in ipairs{ "client_id", "secret", "base_url", "user_agent", "ca_file", "ca_path",
                      "proxy", "documents" } do
    check_opt(opts, k, "string", "new")
  end
  options.numbers("new", opts, RANGES, 2)
  for _, k in ipairs{ "clock", "sleep", "logger" } do check_opt(opts, k, "function", "new") end
  -- a string "false" or a 0 would be true: TLS verification is off only for true
  options.boolean("new", "insecure", opts.insecure, 2)
  if check_opt(opts, "retry", "table", "new") then
    options.names("new", opts.retry, RETRY_RANGES, 2, "retry.")
    options.numbers("new", opts.retry, RETRY_RANGES, 2, "retry.")
  end
  if check_opt(opts, "refresh", "table", "new") then check_refresh("new", opts.refresh, 2) end
  check_expiry("new", "expiry_days", opts.expiry_days, 2)
  local q = opts.quota
  if q ~= nil and q ~= false and type(q) ~= "table" and type(q) ~= "userdata"
     and type(q) ~= "string" then
    error("bad option 'quota' to 'new' (a quota store, \"memory\", a file path or false " ..
          "expected, got " .. type(q) .. ")", 2)
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
  local transport, err = pick_transport{
    transport = opts.transport,
    timeout_ms = opts.timeout_ms or DEFAULTS.timeout_ms,
    connect_timeout_ms = opts.connect_timeout_ms or DEFAULTS.connect_timeout_ms,
    ca_file = opts.ca_file, ca_path = opts.ca_path, proxy = opts.proxy,
    insecure = opts.insecure,
  }
  if not transport then return nil, err end

  -- the refresh quota (truv.quota.from_option): a store that cannot be
  -- opened fails the client rather than leaving it with another one
  local quota, where, qerr = require("truv.quota").from_option(opts.quota)
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
    _clock = opts.clock or (ngx and ngx.now) or core.now,
    _sleep = opts.sleep or (ngx and ngx.sleep) or core.sleep,
    _log = opts.logger,
    _cooldown_until = 0,
    _throttle_streak = 0,
    quota = quota,
    base_url = base_url,
    _options = opts,          -- to derive a client with another transport (batches)
    refresh_defaults = refresh_defaults(opts),
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
    self:_emit("warn", { event = "quota_default", message = "the refresh quota is kept in " ..
      "this process's memory (no quota option): it is lost when the process ends and not " ..
      "shared with other processes; pass quota = \"memory\" to choose it, or a store or a " ..
      "file path for a durable one" })
  end
  self:_emit("info", { event = "client", base_url = base_url, transport = self._transport_kind,
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

function Client:close()
  if self._transport and self._transport.close then self._transport:close() end
end

function Client:now()
  return self._clock()
end

-- Never given a secret: the request's path, the status, the error's
-- (already redacted) text.
function Client:_emit(level, event)
  local log = self._log
  if log then log(level, event) end
end

--- Waits out a 429 cooldown that any earlier call started.
function Client:_wait_cooldown()
  local wait = self._cooldown_until - self._clock()
  if wait > 0 then
    self:_emit("info", { event = "cooldown", seconds = wait })
    self._sleep(wait)
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
end

--- One exchange: wait out a cooldown, send, classify.
function Client:_exchange(req, op, attempt, mode)
  self:_wait_cooldown()
  local started = self._clock()
  local doc, meta = self._transport:perform(req, started, mode or self._documents)
  local elapsed_ms = floor((self._clock() - started) * 1000 + 0.5)
  if doc then
    self._throttle_streak = 0
    self:_emit("debug", { event = "response", op = op, path = req.path, status = meta.status,
                          request_id = meta.request_id, attempt = attempt,
                          elapsed_ms = elapsed_ms })
    return doc, meta
  end
  local err = meta
  err.op = op
  if err.kind == "throttled" then self:_note_throttle(err) end
  self:_emit("warn", { event = "error", op = op, path = req.path, status = err.status,
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

--- Full-jitter backoff, or the server's own hint.
function Client:_backoff(attempt, err, now)
  if err.retry_at then return max(0, err.retry_at - now) end
  local r = self._retry
  local ceiling = min(r.cap_ms, r.base_ms * 2 ^ (attempt - 1)) / 1000
  return random() * ceiling
end

--- Sends a built request. Safe requests retry; others are sent once (the
-- refresh workflow decides what an ambiguous failure of a billed request
-- means, see truv.refresh). `mode` overrides the client's documents setting
-- for this answer ("view", "table", or "model" for an order's model only).
function Client:send(req, mode)
  local op = req.op
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
    local wait = self:_backoff(attempt, err, now)
    if now + wait > deadline then return nil, err end
    self:_emit("info", { event = "retry", op = op, path = req.path, attempt = attempt,
                         wait_s = wait, kind = err.kind })
    if wait > 0 and err.kind ~= "throttled" then self._sleep(wait) end
    attempt = attempt + 1
  end
end

--- Builds a request; returns it or nil, err ("invalid", nothing sent).
function Client:build(op, id, params, facts)
  local req, err = core.build(self._config, op, id, params, facts)
  if not req then err.op = op end
  return req, err
end

function Client:call(op, id, params, facts, mode)
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

local function check_id(id, fname)
  argcheck(type(id) == "string", 1, fname, "string expected, got " .. type(id))
end

local function check_params(params, n, fname)
  argcheck(params == nil or type(params) == "table", n, fname,
           "table expected, got " .. type(params))
end

--- POST orders/: a new order (first_name, last_name, products, ...).
function Client:create_order(params)
  argcheck(type(params) == "table", 1, "create_order", "table expected, got " .. type(params))
  return self:call("create_order", nil, params)
end

--- GET orders/{id}/
function Client:get_order(id)
  check_id(id, "get_order")
  return self:call("get_order", id)
end

--- GET orders/{id}/, keeping only the order's model (truv.core.order_model:
-- id, products, statuses, connections with their tokens): the document is
-- freed as soon as it is read, for loops that need no more than that.
function Client:get_order_model(id)
  check_id(id, "get_order_model")
  return self:call("get_order", id, nil, nil, "model")
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

--- GET orders/{id}/events/ (one page; `query` may hold page, page_size and
-- any filter Truv accepts). With opts.all, every page is fetched and the
-- result is { count =, results = { ... } } as plain tables.
function Client:list_order_events(id, query, opts)
  check_id(id, "list_order_events")
  check_params(query, 2, "list_order_events")
  check_params(opts, 3, "list_order_events")
  if not (opts and opts.all) then return self:call("list_order_events", id, query) end
  return self:_all_pages("list_order_events", id, query, 1000)
end

--- GET tasks/ (one page; `query` holds user_id, page and any filter Truv
-- accepts): a user's tasks with their status and error_message, as Truv's
-- demo applications read them to learn why a connection failed. With
-- opts.all, every page (at most opts.max_pages, default 20) as
-- { count =, results = { ... } } in plain tables.
function Client:list_tasks(query, opts)
  check_params(query, 1, "list_tasks")
  check_params(opts, 2, "list_tasks")
  if not (opts and opts.all) then return self:call("list_tasks", nil, query) end
  return self:_all_pages("list_tasks", nil, query, opts.max_pages or 20)
end

--- GET tasks/{id}/: one task (status, link_id, error_message, created_at, ...).
function Client:get_task(id)
  check_id(id, "get_task")
  return self:call("get_task", id)
end

--- POST refresh/tasks/ { access_token, product_type }: billed, inside the
-- quota, sent once (see truv.refresh).
function Client:create_refresh_task(params)
  argcheck(type(params) == "table", 1, "create_refresh_task",
           "table expected, got " .. type(params))
  return require("truv.refresh").refresh_task(self, params)
end

--- GET refresh/tasks/{id}/
function Client:get_refresh_task(id)
  check_id(id, "get_refresh_task")
  return self:call("get_refresh_task", id)
end

--- POST users/{user_id}/tokens/ { product_type, access_token = <link's> }:
-- a bridge token; with an access_token Bridge opens in update mode.
function Client:create_bridge_token(user_id, params)
  check_id(user_id, "create_bridge_token")
  argcheck(type(params) == "table", 2, "create_bridge_token",
           "table expected, got " .. type(params))
  return self:call("create_bridge_token", user_id, params)
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
-- opts.partial, opts.answer, opts.before_send, opts.admit: see truv.refresh.
function Client:refresh_order(id, params, opts)
  check_id(id, "refresh_order")
  argcheck(type(params) == "table", 2, "refresh_order", "table expected, got " .. type(params))
  check_params(opts, 3, "refresh_order")
  local refresh = require "truv.refresh"
  return refresh.refresh_order(self, id, params, opts or {})
end

--- Polls a refresh order until it is finished (see truv.wait).
function Client:wait_for_refresh(order, opts)
  argcheck(type(order) == "string" or type(order) == "table" or type(order) == "userdata", 1,
           "wait_for_refresh", "order id or document expected, got " .. type(order))
  check_params(opts, 2, "wait_for_refresh")
  return require("truv.wait").wait_for_refresh(self, order, opts)
end

--- What the user needs to reconnect (see truv.reverify).
function Client:reverify(order, opts)
  argcheck(type(order) == "table" or type(order) == "userdata" or type(order) == "string", 1,
           "reverify", "order document expected, got " .. type(order))
  check_params(opts, 2, "reverify")
  return require("truv.reverify").reverify(self, order, opts)
end

_M.DEFAULTS = DEFAULTS
return _M
