--- Waiting for a refresh to finish, by bounded polling (when no webhook
-- endpoint exists), and turning what it produced into routes.
--
--   local result, err = client:wait_for_refresh(refresh_order_or_id_or_model, {
--     timeout_s = 1200,      -- give up after this long (Truv's samples treat >20 min as failed)
--     interval_s = 2,        -- first pause between polls (Truv's quickstart polls every 2 s)
--     max_interval_s = 30,   -- pauses grow by half each time up to this
--   })
--   result = {
--     order = <the refresh order document>,
--     finished = true | false,      -- false: the deadline came first
--     connections = { { kind =, id =, link_id =, status = <suborder status>, task_id =,
--                       task_status =, decision = <truv.route result> }, ... },
--     decision = <the case's route: truv.route.combine of the connections'>,
--   }
--
-- A connection that failed is routed by its task status (login_error,
-- mfa_error, unavailable, ...), read from GET refresh/tasks/{id}/ with the
-- task id found in the order's events; when that cannot be found, by its
-- suborder status.
local core = require "truv.core"
local route_mod = require "truv.route"

local type, ipairs = type, ipairs
local min = math.min

local _M = {}

_M.DEFAULTS = { timeout_s = 1200, interval_s = 2, max_interval_s = 30 }

local UNFINISHED = { pending = true, sent = true }

local function opt(opts, key)
  local v = opts[key]
  if v == nil then v = _M.DEFAULTS[key] end
  return v
end

-- The latest task id per suborder, from the order's events.
local function task_ids(client, order_id)
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

local function decide(client, router, model, now)
  local results, decisions = {}, {}
  local tasks
  for i, c in ipairs(model.connections) do
    local r = { kind = c.kind, id = c.id, link_id = c.link_id, status = c.status }
    local d = router:route({ suborder = c.status or "unknown" }, now)
    if d.final and d.route ~= "done" and d.route ~= "no_data" then
      -- a failure: its task says why
      tasks = tasks or task_ids(client, model.id)
      r.task_id = tasks[c.id]
      if r.task_id then
        local task = client:get_refresh_task(r.task_id)
        if task and type(task.status) == "string" then
          r.task_status = task.status
          d = router:route({ task = task.status }, now)
        end
      end
    end
    r.decision = d
    results[i] = r
    decisions[i] = d
  end
  return results, route_mod.combine(decisions)
end

-- A model (truv.core.order_model) has `connections`; an order document
-- has employers and financial accounts instead.
local function is_model(v)
  return type(v) == "table" and v.connections ~= nil and v.employers == nil
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
  local deadline = client:now() + opt(opts, "timeout_s")
  local interval = opt(opts, "interval_s")
  local first = type(order) ~= "string" and order or nil
  order = nil   -- luacheck: ignore (drop the caller's document from this frame)
  while true do
    local doc, model, err
    local ours = first == nil        -- a document this loop fetched (not the caller's)
    if is_model(first) then
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
    local unfinished = #model.connections == 0 and UNFINISHED[model.status or "pending"]
    for _, c in ipairs(model.connections) do
      if UNFINISHED[c.status or "pending"] then unfinished = true end
    end
    local now = client:now()
    if not unfinished or now + interval > deadline then
      if not doc then
        doc, err = client:get_order(id)   -- the handlers get the order itself
        if not doc then return nil, err end
      end
      local connections, decision = decide(client, router, model, now)
      if #connections == 0 then decision = router:route({ order = model.status or "pending" }, now) end
      return { order = doc, finished = not unfinished, connections = connections,
               decision = decision }
    end
    -- a poll's document is done with: give its memory back now
    if ours and doc and core.isdocument(doc) then core.release(doc) end
    doc, model = nil, nil   -- luacheck: ignore
    client._sleep(interval)
    interval = min(interval * 1.5, opt(opts, "max_interval_s"))
  end
end

return _M
