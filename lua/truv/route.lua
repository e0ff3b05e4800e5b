--- Routing: every outcome of the refresh workflow to one next step.
--
--   local r = truv.route(outcome [, now])
--   --> { route = "reverify", reason = "login_error", outcome = "task",
--         status = "login_error", final = true }
--
-- Routes: done, reverify, retry (with retry_at), defer (with not_before),
-- no_data, fix, and wait (not finished yet). The default table is the C
-- core's (truv/route.h), the one place it is written.
--
-- Outcomes understood:
--   an error (truv.errors)                      by err.kind
--   { error = err }
--   { task = "<status>" }, { suborder = "..." }, { order = "..." }
--   a refresh task document ({ id =, status = })  as a task status
--   a webhook event (truv.webhook.parse)          by event type and status
--   { event = "<type>", status = "..." }
-- A status the table does not know routes to `fix`, its raw value kept in
-- `status` and reason "unknown_status".
--
-- truv.router{ ... } adds overrides and handlers, see Router below.
local core = require "truv.core"
local errors = require "truv.errors"

local type, pairs, ipairs, error, tostring = type, pairs, ipairs, error, tostring
local setmetatable, xpcall = setmetatable, xpcall
local traceback = debug.traceback
local format = string.format

local _M = {}

-- The routes, as the core lists them (truv/route.h, core.lists.routes):
-- NAMES in the core's order, wait first; ROUTES as a set; FINAL the ones a
-- case ends in (every route but wait), in that order: what a report counts.
_M.NAMES = core.lists.routes
local ROUTES = {}
local FINAL = {}
for _, r in ipairs(_M.NAMES) do
  ROUTES[r] = true
  if r ~= "wait" then FINAL[#FINAL + 1] = r end
end
_M.ROUTES = ROUTES
_M.FINAL = FINAL

-- The routes that come back at a time, each with the field that holds its
-- time in a decision (and in what is made of one: a journal record, an
-- event, a report row): a retry's retry_at (when trying again makes sense,
-- as an error's retry_at says), a defer's not_before (when the quota has
-- room again). Both names are public; route.due_at reads whichever the
-- route has, so nothing else needs to know which is which. A later run
-- takes such a case up once it is due.
local TIMED = { retry = "retry_at", defer = "not_before" }
_M.TIMED = TIMED

--- The time a decision (or a record or event made of one) comes back at:
-- its route's field (TIMED), or nil for an untimed route or no time.
function _M.due_at(d)
  local field = TIMED[d.route]
  return field and d[field] or nil
end

-- Which route wins when a case has several connections: a case still
-- waiting is not finished; otherwise the one a person must look at first.
local PRECEDENCE = { "wait", "fix", "reverify", "retry", "defer", "no_data", "done" }
_M.PRECEDENCE = PRECEDENCE

local DEFAULT_TABLE = core.route_table()

-- A defer whose outcome says no time: the quota's window, after which a
-- spent connection has room again whatever it spent.
local DEFER_S = core.lists.defaults.quota_window_s

-- Events that carry data or bookkeeping, never a decision.
local INFORMATIONAL = {
  ["order-finalized"] = true, ["certification-completed"] = true,
}
local function informational(event_type)
  return INFORMATIONAL[event_type] or event_type:match("%-created$") ~= nil
      or event_type:match("%-updated$") ~= nil
end

local function copy_table(t)
  local c = {}
  for outcome, entries in pairs(t) do
    c[outcome] = {}
    for name, e in pairs(entries) do c[outcome][name] = { route = e.route, delay = e.delay } end
  end
  return c
end

-- Applies overrides to a copy of the table:
--   map = { task = { unavailable = "defer" }, login_error = "fix" }
-- A bare status name applies to every outcome kind that has it (or to
-- task statuses when none has it yet).
local function apply_overrides(tbl, map)
  for k, v in pairs(map or {}) do
    if type(v) == "table" then
      if not tbl[k] then error("unknown outcome kind '" .. tostring(k) .. "' in map", 3) end
      for name, route in pairs(v) do
        if not ROUTES[route] then error("unknown route '" .. tostring(route) .. "'", 3) end
        local e = tbl[k][name] or { delay = 0 }
        e.route = route
        tbl[k][name] = e
      end
    else
      if not ROUTES[v] then error("unknown route '" .. tostring(v) .. "'", 3) end
      local hit = false
      for _, entries in pairs(tbl) do
        if entries[k] then entries[k].route, hit = v, true end
      end
      if not hit then tbl.task[k] = { route = v, delay = 0 } end
    end
  end
end

local function decision(route, reason, outcome, status, when)
  local d = { route = route, reason = reason, outcome = outcome, status = status,
              final = route ~= "wait" }
  local field = TIMED[route]
  if field then d[field] = when end
  return d
end

-- The time a timed route comes back at: the outcome's own `hint` (Truv's or
-- the quota's), else `delay` after now for a retry and the quota's window
-- for a defer; nil for the other routes.
local function when_of(route, hint, now, delay)
  if route == "retry" then return hint or (now + delay) end
  if route == "defer" then return hint or (now + DEFER_S) end
  return nil
end

local function by_status(self, kind, status, now, hint)
  local e = self.table[kind][status]
  if not e then
    return decision("fix", "unknown_status", kind, status)
  end
  local delay = self.delays[status] or e.delay
  return decision(e.route, status, kind, status, when_of(e.route, hint, now, delay))
end

local function route_error(self, err, now)
  local e = self.table.error[err.kind]
  if not e then return decision("fix", "unknown_error", "error", err.kind) end
  local reason = err.code or err.kind
  local delay = self.delays[reason] or self.delays[err.kind] or e.delay
  local d = decision(e.route, reason, "error", err.kind, when_of(e.route, err.retry_at, now, delay))
  d.error = err
  d.expiring = err.expiring   -- connections likely to expire soon (truv.refresh)
  return d
end

local function route_event(self, ev, now)
  local t = ev.event_type or ev.type or ev.event
  local status = ev.status
  if t == "task-status-updated" and status then return by_status(self, "task", status, now) end
  if t == "order-status-updated" and status then return by_status(self, "suborder", status, now) end
  if t == "order-refresh-failed" then
    if status == "error" then
      -- Truv's generic failure: the cause is unknown, routed as a failed
      -- refresh suborder (never an automatic, billed retry by default)
      local d = by_status(self, "suborder", status, now)
      d.reason = "refresh_failed_unknown"
      return d
    end
    if status and self.table.task[status] then return by_status(self, "task", status, now) end
    if status and self.table.suborder[status] then
      local d = by_status(self, "suborder", status, now)
      -- a failed refresh is never "done" nor still waiting
      if d.route == "done" or d.route == "wait" then d = decision("fix", status, "suborder", status) end
      return d
    end
    return decision("fix", status and "unknown_status" or "refresh_failed", "event", status)
  end
  local e = self.table.event[t]
  if e then return by_status(self, "event", t, now) end
  if type(t) == "string" and informational(t) then
    return decision("wait", t, "event", status)
  end
  return decision("fix", "unknown_event", "event", t)
end

--- The route of one outcome.
local function route(self, o, now)
  now = now or self.clock()
  if errors.is(o) then return route_error(self, o, now) end
  if type(o) ~= "table" and type(o) ~= "userdata" then
    error("bad argument #1 to 'route' (an outcome expected, got " .. type(o) .. ")", 3)
  end
  if o.error then return route_error(self, o.error, now) end
  if o.task then return by_status(self, "task", o.task, now) end
  if o.suborder then return by_status(self, "suborder", o.suborder, now) end
  if o.order then return by_status(self, "order", o.order, now) end
  if o.event or o.event_type or o.webhook_id then return route_event(self, o, now) end
  if type(o.status) == "string" then return by_status(self, "task", o.status, now) end
  error("bad argument #1 to 'route' (unrecognised outcome)", 3)
end

--- The route of a case with several connections: the first route in
-- PRECEDENCE among them; `decisions` is the list.
function _M.combine(decisions)
  local rank = {}
  for i, r in ipairs(PRECEDENCE) do rank[r] = i end
  local best
  for _, d in ipairs(decisions) do
    if not best or rank[d.route] < rank[best.route] then best = d end
  end
  return best
end

-- ------------------------------------------------------------------ Router

local Router = {}
Router.__index = Router
_M.Router = Router

--- truv.router{ done = fn, reverify = fn, retry = fn, defer = fn, no_data = fn,
--   fix = fn, wait = fn, map = overrides, delays = { [reason] = seconds },
--   clock = fn }
-- Handlers are called as fn(decision, case, outcome); a route without a
-- handler is simply returned.
function _M.router(spec)
  spec = spec or {}
  if type(spec) ~= "table" then
    error("bad argument #1 to 'router' (table expected, got " .. type(spec) .. ")", 2)
  end
  local handlers = {}
  for _, r in ipairs(_M.NAMES) do
    local h = spec[r]
    if h ~= nil and type(h) ~= "function" then
      error("handler '" .. r .. "' must be a function", 2)
    end
    handlers[r] = h
  end
  for k in pairs(spec) do
    if not handlers[k] and not ROUTES[k] and k ~= "map" and k ~= "delays" and k ~= "clock" then
      error("unknown router option '" .. tostring(k) .. "'", 2)
    end
  end
  local tbl = copy_table(DEFAULT_TABLE)
  apply_overrides(tbl, spec.map)
  return setmetatable({
    table = tbl,
    delays = spec.delays or {},
    handlers = handlers,
    clock = spec.clock or (ngx and ngx.now) or core.now,
  }, Router)
end

function Router:route(outcome, now)
  return route(self, outcome, now)
end

--- Calls the handler of `decision.route` with (decision, case, outcome).
-- Returns decision, handler_result, or nil, err when the handler raised:
-- err.kind == "handler", err.case, err.message with the traceback.
function Router:act(d, case, outcome)
  local h = self.handlers[d.route]
  if not h then return d end
  local ok, res = xpcall(h, traceback, d, case, outcome)
  if not ok then
    local case_id = type(case) == "table" and (case.case_id or case.id) or case
    return nil, errors.new("handler", "handler_error", format("the %s handler failed for case %s: %s",
      d.route, tostring(case_id), tostring(res)), { case = case_id, route = d.route, decision = d })
  end
  return d, res
end

--- Routes `outcome`, then acts on the decision (see Router:act).
function Router:dispatch(outcome, case, now)
  return self:act(route(self, outcome, now), case, outcome)
end

local default_router = _M.router{}
_M.default = default_router

--- truv.route(outcome [, now]) with the default table.
function _M.route(outcome, now)
  return route(default_router, outcome, now)
end

return _M
