--- The script's side of the gateway: what to do for each route of a Truv
-- event. Each handler is called as fn(decision, case, event, gateway) while
-- Truv waits for the answer (10 s at most), so it only records and
-- schedules: slow work (reading the refreshed order, creating a new
-- verification link, calling internal services) goes to gateway.later(fn,
-- ...), an nginx timer where cosockets work.
--
--   decision  { route =, reason =, not_before =, retry_at = } (truv.route);
--             for a refresh this gateway started, the decision of the whole
--             refresh, once: refresh_order_id, connections = { { id =
--             (suborder), route =, reason =, status =, link_id = } }, by_route
--             = { [route] = { suborder ids } }
--   case      { case_id =, order_id =, original_order_id =, refresh_order_id =,
--               webhook_id =, employer_id =, task_id =, link_id = }
--   event     the parsed webhook that completed the decision (truv.webhook.parse)
--
-- A refresh's connections settle one by one; until the last has, its events
-- go to `wait`. So a two-employer refresh that fails makes one new link, and
-- a refresh with one connection needing the user and another that hit a
-- provider outage goes to `reverify` (never `retry`: refreshing again would
-- bill the connection only the user can fix, and fail again).
--
-- A handler that raises makes the gateway answer 500 and forget the
-- webhook_id: Truv delivers it again later, and the decision is handed on
-- again.
--
-- Log levels (nginx's error_log): `warn` for what a person acts on (a new
-- verification link to send, a refresh to schedule again, a deferral, no
-- data, a case to fix), `error` when the gateway failed at its part (the
-- refreshed order or a new link could not be made), `info` for fresh data.
-- nginx keeps `error` and above by default: nginx.conf sets `warn`.
local ngx = ngx
local tostring, ipairs = tostring, ipairs

local _M = {}

local function log_at(level)
  return function(decision, case, event)
    ngx.log(level, "truv: case ", tostring(case.case_id), " order ",
            tostring(case.original_order_id), ": ", event.event_type, " -> ", decision.route,
            " (", tostring(decision.reason), ")")
  end
end
local log, action = log_at(ngx.INFO), log_at(ngx.WARN)

--- Fresh data: read the refresh order (in a timer) and pre-fill the case.
function _M.done(decision, case, event, gateway)
  log(decision, case, event)
  local refresh_id = decision.refresh_order_id
  if not refresh_id then return end   -- not a refresh this gateway started
  gateway.later(function(order_id, case_id)
    local client = gateway.client()
    local order, err = client:get_order(order_id)
    if not order then
      ngx.log(ngx.ERR, "truv: cannot read refresh order ", order_id, ": ", tostring(err))
      return
    end
    -- hand `order` to the case system here (an HTTP call through a cosocket,
    -- a queue, ...)
    ngx.log(ngx.INFO, "truv: case ", tostring(case_id), " has fresh data from order ", order.id)
  end, refresh_id, case.case_id)
end

-- The original order's connections behind the refresh's suborders that
-- need the user (matched by link), for a link that reconnects only those.
local function failing_connections(order, decision)
  local links = {}
  for _, c in ipairs(decision.connections or {}) do
    if c.route == "reverify" and c.link_id then links[c.link_id] = true end
  end
  local ids = {}
  for _, kind in ipairs{ "employers", "financial_accounts" } do
    local list = order[kind]
    for i = 1, list and #list or 0 do
      if links[list[i].link_id] then ids[#ids + 1] = list[i].id end
    end
  end
  return #ids > 0 and ids or nil
end

--- The user must reconnect: one new verification link (in a timer) for the
-- connections that need the user.
function _M.reverify(decision, case, event, gateway)
  action(decision, case, event)
  if not decision.refresh_order_id or not case.original_order_id then return end
  gateway.later(function(original_id, case_id)
    local client = gateway.client()
    local order, err = client:get_order(original_id)
    local link
    if order then
      link, err = client:reverify(order, { connections = failing_connections(order, decision) })
    end
    if not link then
      ngx.log(ngx.ERR, "truv: no new link for case ", tostring(case_id), ": ", tostring(err))
      return
    end
    -- Truv's Order keeps no contact, so this new order has none (pass
    -- `contact = { email =, phone = }` from your case system to have Truv
    -- send it): link.share_url carries a bridge token and goes to the
    -- applicant through your mailer, never to a log; the log names the order
    ngx.log(ngx.WARN, "truv: new verification link for case ", tostring(case_id),
            " (order ", tostring(link.order_id), "): send it to the applicant")
  end, case.original_order_id, case.case_id)
end

-- retry: schedule POST /renewals/{case}/refresh at decision.retry_at with the
-- employers of decision.by_route.retry (mapped to the original's by link_id,
-- as reverify does): it comes only when no connection needs the user
_M.retry = action
_M.defer = action     -- not before decision.not_before
_M.no_data = action   -- connected, nothing returned: ask for documents instead
_M.fix = action       -- a person must look at it

function _M.wait() end   -- an intermediate step (a connection settled, a task step): nothing to do

return _M
