--- Refresh orders followed to their end across webhooks, so that a
-- receiver's handlers act once per case and refresh order.
--
-- Truv reports a refresh connection by connection: a two-employer refresh
-- that fails sends an order-refresh-failed per employer (and task and link
-- events besides). Handed to the route handlers one by one, the case gets
-- two new verification links for one applicant, or a `retry` (refresh
-- again, billed) for one connection and a `reverify` for the other, and
-- the retry refreshes the connection only the user can fix. A tracked
-- refresh instead collects each connection's outcome and, once every
-- connection has one, hands the handlers one decision: truv.route.combine
-- of them (the route a person must look at first: fix, then reverify, then
-- retry...), as renewal runs route a case.
--
--   local tracker = require "truv.tracker"
--   local t = tracker.new(ngx.shared.truv_webhooks)   -- or tracker.memory()
--   t:track(refresh_order, { case_id = "case-42", original_order_id = id })
--   local rec = t:find(event)        -- the tracked refresh an event is about, or nil
--   local d = t:settle(rec, suborder_id, decision)   -- the combined decision, once
--   t:unsettle(rec)                  -- its handler failed: settle again on Truv's retry
--
-- The store is anything with ngx.shared.DICT's get, set, add and delete
-- (safe_set and safe_add are used when it has them: a tracked refresh is
-- never evicted to make room); every worker sharing it sees every refresh,
-- and exactly one of them hands a refresh's decision on (an `add`).
-- Records: "<prefix>r:<refresh order id>" (the case, the original order,
-- the connections), "<prefix>s:<connection id>" (its refresh order),
-- "<prefix>o:<refresh order id>:<connection id>" (the connection's
-- outcome) and "<prefix>d:<refresh order id>" (handed on), all kept `ttl`
-- seconds (30 days).
--
-- A connection's outcome, from one event: a final suborder status that is
-- not a failure (completed, no_data), or a failure together with its
-- cause, from order-refresh-failed or from the connection's task reaching
-- a final failure status (task-status-updated): the suborder's own `error`
-- says no more than "failed", and Truv sends the cause after it. What an
-- event says and what it comes to are truv.outcome's (note, decision), as
-- for polling: Truv's generic `error` goes to fix (refresh_failed_unknown),
-- never to an automatic, billed retry.
local core = require "truv.core"
local route_mod = require "truv.route"
local errors = require "truv.errors"
local outcome = require "truv.outcome"
local refresh_mod = require "truv.refresh"

local type, ipairs, tostring, setmetatable, pcall = type, ipairs, tostring, setmetatable, pcall

local _M = {}

_M.DEFAULT_TTL = 30 * 86400

local Tracker = {}
Tracker.__index = Tracker

-- ------------------------------------------------------------ memory kv

local Memory = {}
Memory.__index = Memory

function Memory:get(k)
  local e = self.t[k]
  if not e then return nil end
  if e[2] and e[2] <= self.clock() then
    self.t[k] = nil
    return nil
  end
  return e[1]
end

function Memory:set(k, v, ttl)
  self.t[k] = { v, ttl and ttl > 0 and self.clock() + ttl or nil }
  return true
end

function Memory:add(k, v, ttl)
  if self:get(k) ~= nil then return false, "exists" end
  return self:set(k, v, ttl)
end

function Memory:delete(k)
  self.t[k] = nil
  return true
end

--- A store in this process's memory (one process: tests, a single-process
-- server), with ngx.shared.DICT's get, set, add and delete.
function _M.memory(opts)
  opts = opts or {}
  return setmetatable({ t = {}, clock = opts.clock or (ngx and ngx.now) or core.now }, Memory)
end

-- ------------------------------------------------------------- tracker

--- tracker.new(kv [, { prefix = "truv:t:", ttl = seconds }])
function _M.new(kv, opts)
  opts = opts or {}
  local ok = pcall(function()
    return type(kv.get) == "function" and type(kv.set) == "function"
       and type(kv.add) == "function" and type(kv.delete) == "function"
  end)
  if not ok then
    error("bad argument #1 to 'tracker' (a store with get, set, add and delete expected)", 2)
  end
  return setmetatable({ kv = kv, prefix = opts.prefix or "truv:t:",
                        ttl = opts.ttl or _M.DEFAULT_TTL }, Tracker)
end

local function store_error(what, err)
  return errors.new("internal", "tracker", "cannot " .. what .. ": " .. tostring(err))
end

function Tracker:_set(k, v)
  local kv = self.kv
  local ok, err = (kv.safe_set or kv.set)(kv, self.prefix .. k, v, self.ttl)
  if not ok then return nil, store_error("keep a tracked refresh", err) end
  return true
end

function Tracker:_get(k)
  return self.kv:get(self.prefix .. k)
end

--- Follows refresh order `refresh` (its document, plain table or model:
-- id and its connections) for `case` = { case_id =, original_order_id = }.
-- Returns true, or nil, err when the store cannot keep it.
function Tracker:track(refresh, case)
  local model, err = refresh_mod.model(refresh)
  if not model then return nil, err end
  local ids = {}
  for i, c in ipairs(model.connections) do ids[i] = c.id end
  local rec = core.encode{ case_id = case.case_id, original_order_id = case.original_order_id,
                           connections = setmetatable(ids, { __jsontype = "array" }) }
  local ok
  ok, err = self:_set("r:" .. model.id, rec)
  if not ok then return nil, err end
  for _, id in ipairs(ids) do
    ok, err = self:_set("s:" .. id, model.id)
    if not ok then return nil, err end
  end
  return true
end

local function decode(text)
  local ok, v = pcall(core.decode, text, "table")
  return ok and type(v) == "table" and v or nil
end

local function record(self, rid)
  local text = self:_get("r:" .. rid)
  local rec = text and decode(text)
  if not rec then return nil end
  rec.refresh_order_id = rid
  return rec
end

--- The tracked refresh an event is about (by its order, or by the
-- connection it names: employer_id, a task's tracking_info), or nil.
function Tracker:find(ev)
  if type(ev.order_id) == "string" then
    local rec = record(self, ev.order_id)
    if rec then return rec end
  end
  for _, id in ipairs{ ev.employer_id, ev.tracking_info } do
    if type(id) == "string" then
      local rid = self:_get("s:" .. id)
      if rid then return record(self, rid) end
    end
  end
  return nil
end

--- The connection of `rec` an event settles, and its decision; nil when the
-- event says nothing final about one (see the top). `router` routes.
function _M.outcome(router, rec, ev, now)
  local note = outcome.note(router, ev)
  if not note or type(note.status) ~= "string" then return nil end
  local mine = false
  for _, c in ipairs(rec.connections or {}) do mine = mine or c == note.id end
  if not mine then return nil end
  local state = {}
  outcome.apply(state, note)
  local d = outcome.decision(router, state, now)
  if not d then return nil end
  return note.id, { route = d.route, reason = d.reason, status = ev.status, link_id = ev.link_id,
                    retry_at = d.retry_at, not_before = d.not_before }
end

--- Records connection `id`'s outcome (a decision) for tracked refresh
-- `rec`. Returns the refresh's combined decision when every connection has
-- one and nobody handed it on before (exactly once across the store's
-- users); false when it is not time (or it was handed on already); nil,
-- err when the store fails.
function Tracker:settle(rec, id, d)
  local rid = rec.refresh_order_id
  local ok, err = self:_set("o:" .. rid .. ":" .. id, core.encode{
    route = d.route, reason = d.reason, status = d.status, link_id = d.link_id,
    retry_at = d.retry_at, not_before = d.not_before })
  if not ok then return nil, err end
  local decisions, connections = {}, {}
  for i, cid in ipairs(rec.connections) do
    local text = self:_get("o:" .. rid .. ":" .. cid)
    local o = text and decode(text)
    if not o then return false end
    o.id = cid
    decisions[i], connections[i] = o, o
  end
  local kv = self.kv
  local added, aerr = (kv.safe_add or kv.add)(kv, self.prefix .. "d:" .. rid, true, self.ttl)
  if not added then
    if aerr == "exists" then return false end
    return nil, store_error("hand a tracked refresh on", aerr)
  end
  local best = route_mod.combine(decisions)
  local combined = { route = best.route, reason = best.reason, status = best.status,
                     retry_at = best.retry_at, not_before = best.not_before, final = true,
                     refresh_order_id = rid, connections = connections }
  -- the connections each route is about: a new link for those the user must
  -- fix, never a refresh of them (a retry names only the retryable ones)
  local by = {}
  for _, c in ipairs(connections) do
    by[c.route] = by[c.route] or {}
    by[c.route][#by[c.route] + 1] = c.id
  end
  combined.by_route = by
  return combined
end

--- A refresh whose handler failed: handed on again when Truv retries.
function Tracker:unsettle(rec)
  self.kv:delete(self.prefix .. "d:" .. rec.refresh_order_id)
end

_M.Tracker = Tracker

return _M
