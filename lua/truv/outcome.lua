--- Is a refresh finished, and what did it produce: decided here, once, for
-- polling (truv.wait), a run's webhooks (truv.inbox) and a gateway's
-- (truv.tracker).
--
-- A connection of a refresh order is finished when its suborder status is
-- final: the router's table routes it elsewhere than `wait` (a status Truv
-- has not given yet is not final). A finished connection whose route is
-- done or no_data produced that. Any other final suborder status (error,
-- expired, skipped, canceled) is a failure, routed by its task's final
-- status when that says why (any final status but done and Truv's generic
-- `error`), else by the suborder status; a suborder `error` of unknown
-- cause goes where the table sends a suborder error (fix), reason
-- "refresh_failed_unknown": never an automatic, billed retry, since the
-- cause may be one only the user can fix (failure()).
--
-- What the webhooks say of a connection (note(), apply()): its suborder
-- status (order-status-updated: employer_id is the suborder), a refresh
-- failure (order-refresh-failed: its status is the failed task's), its
-- task's status (task-status-updated: tracking_info is the suborder). Only
-- final statuses count. A connection is settled by a final suborder status
-- or a refresh failure; its outcome is decided (decision()) once it needs
-- nothing more: done or no_data, or a failure together with its task's
-- final status. Truv sends no order event for a failed suborder, so the
-- cause may never come by webhook: polling then reads it from Truv's task
-- list (truv.wait), which a webhook-only caller cannot (truv.tracker waits).
local route_mod = require "truv.route"
local facts_mod = require "truv.facts"

local type, ipairs = type, ipairs

local _M = {}

--- Whether a decision is a failure: final, and neither done nor no_data.
local function failed(d)
  return d.final and d.route ~= "done" and d.route ~= "no_data"
end
_M.failed = failed

--- Whether a suborder status is final (see the top).
function _M.finished(router, status)
  return status ~= nil and router:route({ suborder = status }).final
end

--- Whether every connection of a refresh order (its model) is finished.
function _M.all_finished(router, model)
  for _, c in ipairs(model.connections) do
    if not _M.finished(router, c.status) then return false end
  end
  return true
end

--- The route of a failed connection: by its task's status when that says
-- why, else by its suborder status (see the top); error_message is the
-- task's, kept on a failure of unknown cause.
function _M.failure(router, suborder_status, task_status, error_message, now)
  local d = task_status and task_status ~= "error" and router:route({ task = task_status }, now)
  if d and d.final and d.route ~= "done" then return d end
  d = router:route({ suborder = suborder_status or "unknown" }, now)
  if suborder_status == "error" then
    -- the cause is not known: a person decides (the table's suborder error)
    d.reason = "refresh_failed_unknown"
    d.task_status = task_status
    d.error_message = error_message
  end
  return d
end

-- The webhook events that can say something final about a connection.
local RELEVANT = { ["order-status-updated"] = true, ["order-refresh-failed"] = true,
                   ["task-status-updated"] = true }

--- What a parsed webhook event says, final, about a connection:
-- { type =, id = <suborder id>, order_id = <refresh order>, status =,
--   task_id =, at = <updated_at> }, or nil when it says nothing final.
function _M.note(router, ev)
  local t = ev.event_type
  if not RELEVANT[t] then return nil end
  local id, status = ev.employer_id, ev.status
  if t == "task-status-updated" then
    id = ev.tracking_info
    if not status or not router:route({ task = status }).final then return nil end
  elseif t == "order-status-updated" then
    if not _M.finished(router, status) then return nil end
  end
  if type(id) ~= "string" then return nil end
  return { type = t, id = id, order_id = ev.order_id, status = status, task_id = ev.task_id,
           at = ev.updated_at }
end

--- Adds a note to a connection's state { suborder =, failed =, task_status
-- =, task_id =, task_at =, settled = }; returns true when the connection
-- became settled by it (a final suborder status or a refresh failure).
function _M.apply(c, note)
  local t = note.type
  if t == "task-status-updated" then
    c.task_status, c.task_id, c.task_at = note.status, note.task_id, note.at
  elseif t == "order-refresh-failed" then
    c.failed = note.status or "failed"
    -- the failure status is the task's; a task event, when one came, says it first-hand
    if not c.task_status then c.task_status, c.task_at = note.status, note.at end
  else
    c.suborder = note.status
  end
  if not c.settled and (c.suborder or c.failed) then
    c.settled = true
    return true
  end
  return false
end

--- The decision a connection's state (as apply() keeps it) comes to, or
-- nil while it needs more: not finished, or a failure whose task status
-- has not come.
function _M.decision(router, c, now)
  local d = c.suborder and router:route({ suborder = c.suborder }, now)
  if d and d.final and not failed(d) then return d end
  local task = c.task_status and router:route({ task = c.task_status }, now)
  local failing = c.failed or (d and d.final) or (task and failed(task))
  if not (failing and c.task_status) then return nil end
  return _M.failure(router, c.suborder or "error", c.task_status, nil, now)
end

--- The outcome of a refresh order (its model, as read at the end):
-- results, one per connection { kind =, id =, link_id =, status =,
-- task_id =, task_status =, error_message =, decision = }, and the case's
-- decision, the route of them all (truv.route.combine; an order without
-- connections: fix, "no_connections"), and the facts it taught (for
-- remember()). `cause(c, r)` learns why connection c failed: fills
-- r.task_id, r.task_status, r.error_message and returns the task's time
-- (or nil); or returns false when it cannot be learned there, and decide
-- returns nil (the caller polls instead).
function _M.decide(router, model, now, cause)
  local results, decisions, taught = {}, {}, {}
  for i, c in ipairs(model.connections) do
    local r = { kind = c.kind, id = c.id, link_id = c.link_id, status = c.status }
    local d = router:route({ suborder = c.status or "unknown" }, now)
    if failed(d) then
      local at = cause(c, r)
      if at == false then return nil end
      d = _M.failure(router, c.status, r.task_status, r.error_message, now)
      if d.outcome == "task" then taught[#taught + 1] = { c, r.task_status, at } end
    elseif d.route == "done" then
      taught[#taught + 1] = { c, "done" }
    end
    r.decision = d
    results[i], decisions[i] = r, d
  end
  if #results == 0 then
    -- an order without connections: nothing was or will be refreshed
    return results, { route = "fix", reason = "no_connections", outcome = "order", final = true },
           taught
  end
  return results, route_mod.combine(decisions), taught
end

--- Notes what decide() taught in `store` (a quota store keeping connection
-- facts, or nil): a refresh that completed as alive, a failure only the
-- user can fix as dead (truv.facts); at the task's time, else `now`.
function _M.remember(store, taught, now, warn)
  for _, t in ipairs(taught) do
    facts_mod.note_outcome(store, t[1], t[2], t[3] or now, warn)
  end
end

return _M
