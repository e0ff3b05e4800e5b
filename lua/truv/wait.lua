--- Waiting for a refresh to finish, by bounded polling (when no webhook
-- endpoint exists), and turning what it produced into routes.
--
--   local result, err = client:wait_for_refresh(refresh_order_or_id_or_model, {
--     timeout_s = 1200,      -- give up after this long (Truv's samples treat >20 min as failed)
--     interval_s = 2,        -- first pause between polls (Truv's quickstart polls every 2 s)
--     max_interval_s = 30,   -- pauses grow by half each time up to this
--     expiring = meta.expiring,  -- refresh_order's warning, handed on to the result
--     plan = pollplan,       -- optional: when to poll, learned (truv.pollplan); it
--                            -- replaces interval_s and max_interval_s, and learns
--                            -- from the waits of refreshes handed over as they were
--                            -- sent (a document or model, not an id)
--   })
--   result = {
--     order = <the refresh order document>,
--     finished = true | false,      -- false: the deadline came first
--     connections = { { kind =, id =, link_id =, status = <suborder status>, task_id =,
--                       task_status =, error_message =, decision = <truv.route result> },
--                     ... },
--     decision = <the case's route: truv.route.combine of the connections'>,
--     expiring = <opts.expiring, also in decision.expiring>,
--   }
--
-- Whether a refresh is finished and what it produced is truv.outcome's
-- decision: a connection whose suborder completed is done, no_data is
-- no_data. One that failed is routed by its task's status (login_error,
-- mfa_error, unavailable, ...), learned here through what Truv documents,
-- in this order:
--   1. the link's tasks, as Truv's demo applications read them: GET
--      tasks/?user_id=<the order's user> (every page), the newest task of
--      the connection's link_id created at or after the refresh order's
--      created_at (less clock_skew_s, 300), with its status and
--      error_message;
--   2. a task id the order's events name for the suborder (their documented
--      task_id field, whatever the event's type), read with GET
--      refresh/tasks/{id}/.
-- Truv sends no order event for a failed suborder, so neither may answer.
-- A suborder `error` whose cause was not learned (no task found, or only
-- Truv's generic task status `error`) is never retried (a retry is billed,
-- and the cause may be a login_error): it routes as the table says for a
-- suborder error (`fix`), reason "refresh_failed_unknown", with the task's
-- error_message when one was found.
--
-- What a refresh ended in is noted in the client's quota store when it
-- keeps connection facts (truv.facts): done as `alive`, login_error,
-- mfa_error, account_locked and unable_to_reset as `dead`, so that the
-- next refresh of a dead connection is refused without being billed.
local core = require "truv.core"
local route_mod = require "truv.route"
local facts_mod = require "truv.facts"
local outcome = require "truv.outcome"
local refresh = require "truv.refresh"
local time = require "truv.time"

local type, ipairs, tostring = type, ipairs, tostring
local min = math.min

local _M = {}

_M.DEFAULTS = { timeout_s = 1200, interval_s = 2, max_interval_s = 30,
                clock_skew_s = refresh.DEFAULTS.clock_skew_s }
-- What each option accepts (client:wait_for_refresh checks them).
_M.LIMITS = {
  timeout_s = { min = 0, max = 7 * 86400, unit = "seconds" },
  interval_s = { above = 0, max = 3600, unit = "seconds" },
  max_interval_s = { above = 0, max = 86400, unit = "seconds" },
  clock_skew_s = { min = 0, max = 86400, unit = "seconds" },
}

local function opt(opts, key)
  local v = opts[key]
  if v == nil then v = _M.DEFAULTS[key] end
  return v
end

-- The latest task id per suborder, from the order's events (the documented
-- task_id field of any event that names the suborder).
local function event_task_ids(client, order_id)
  local events = client:list_order_events(order_id, nil, { all = true })
  local ids = {}
  if not events then return ids end
  for _, ev in ipairs(events.results) do
    if type(ev.task_id) == "string" and type(ev.suborder_id) == "string" then
      ids[ev.suborder_id] = ev.task_id
    end
  end
  return ids
end

-- What the refresh of connection `c` ended in, from Truv's documented
-- channels (see the top). Fills r.task_id, r.task_status, r.error_message
-- and returns the task's time (epoch s) when it has one.
local function learn_task(client, model, c, r, ctx)
  if type(model.user_id) == "string" and type(c.link_id) == "string" and not ctx.no_tasks then
    local tasks, err = facts_mod.link_tasks(client, model.user_id, c.link_id, ctx.tasks)
    if not tasks then
      ctx.no_tasks = true    -- asked once per wait
      client:emit("warn", { event = "tasks_unreadable", op = "wait_for_refresh",
                            error = tostring(err) })
    end
    local from = (model.created_at or 0) - ctx.skew
    for _, t in ipairs(tasks or {}) do
      if t.created_at and t.created_at >= from then
        r.task_id, r.task_status, r.error_message = t.id, t.status, t.error_message
        return facts_mod.task_time(t)
      end
    end
  end
  ctx.events = ctx.events or event_task_ids(client, model.id)
  local id = ctx.events[c.id]
  if id then
    local task = client:get_refresh_task(id)
    if task and type(task.status) == "string" then
      r.task_id, r.task_status = id, task.status
      return time.parse(task.created_at)
    end
    r.task_id = id
  end
  return nil
end

-- (kept: a failed connection's route, now truv.outcome's)
_M.failure_decision = outcome.failure

-- The outcome of the order (truv.outcome.decide), each failed
-- connection's cause learned from Truv's tasks; what it taught is noted in
-- the client's quota store when it keeps connection facts.
local function decide(client, router, model, now, opts)
  local ctx = { tasks = {}, skew = opt(opts, "clock_skew_s") }
  local connections, decision, taught = outcome.decide(router, model, now, function(c, r)
    return learn_task(client, model, c, r, ctx)
  end)
  outcome.remember(facts_mod.store(client.quota), taught, now,
                   function(ev) client:emit("warn", ev) end)
  return connections, decision
end

--- Polls until every connection of the refresh order is finished, or the
-- deadline. `order` is the refresh order's id, document or model. Returns
-- the result above, or nil, err when the order cannot be read at all.
-- Nothing of a poll is held while sleeping: with hundreds of cases waiting
-- at once, their documents would be most of the memory.
function _M.wait_for_refresh(client, order, opts)
  opts = opts or {}
  local router = opts.router or route_mod.default
  local id = type(order) == "string" and order or order.id
  local started = client:now()
  local deadline = started + opt(opts, "timeout_s")
  local interval = opt(opts, "interval_s")
  local plan = opts.plan
  local first = type(order) ~= "string" and order or nil
  local learn = plan and first ~= nil      -- a refresh just sent: its wait is a sample
  local polls = 0                          -- polls made (the refresh's answer is not one)
  order = nil   -- luacheck: ignore (drop the caller's document from this frame)
  while true do
    local doc, model, err
    local ours = first == nil        -- a document this loop fetched (not the caller's)
    if refresh.is_model(first) then
      model = first
    else
      doc = first
      if not doc then
        doc, err = client:get_order(id)
        if not doc then return nil, err end
      end
      model, err = core.order_model(doc)
      if not model then return nil, err end
    end
    first = nil
    local unfinished = not outcome.all_finished(router, model)
    local now = client:now()
    if learn and polls > 0 then plan:observe(polls, now - started, not unfinished) end
    local pause = plan and plan:pause(polls + 1, now - started) or interval
    if not unfinished or now + pause > deadline then
      if not doc then
        doc, err = client:get_order(id)   -- the handlers get the order itself
        if not doc then return nil, err end
      end
      local connections, decision = decide(client, router, model, now, opts)
      -- connections likely to expire soon, as refresh_order's meta.expiring said
      decision.expiring = opts.expiring
      return { order = doc, finished = not unfinished, connections = connections,
               decision = decision, expiring = opts.expiring, polls = polls }
    end
    -- a poll's document is done with: give its memory back now
    if ours and doc and core.isdocument(doc) then core.release(doc) end
    doc, model = nil, nil   -- luacheck: ignore
    client:sleep(pause)
    polls = polls + 1
    interval = min(interval * 1.5, opt(opts, "max_interval_s"))
  end
end

return _M
