--- The script's side of the gateway: what to do for each route of a Truv
-- event. Each handler is called as fn(decision, case, event, gateway) while
-- Truv waits for the answer (10 s at most), so it only records and
-- schedules: slow work (reading the refreshed order, creating a new
-- verification link, calling internal services) goes to gateway.later(fn,
-- ...), an nginx timer where cosockets work.
--
--   decision  { route =, reason =, not_before =, retry_at = } (truv.route)
--   case      { case_id =, order_id =, original_order_id =, webhook_id =,
--               employer_id =, task_id =, link_id = }
--   event     the parsed webhook (truv.webhook.parse)
--
-- A handler that raises makes the gateway answer 500 and forget the
-- webhook_id: Truv delivers it again later.
local ngx = ngx
local tostring = tostring

local _M = {}

local function log(decision, case, event)
  ngx.log(ngx.NOTICE, "truv: case ", tostring(case.case_id), " order ",
          tostring(case.original_order_id), ": ", event.event_type, " -> ", decision.route,
          " (", tostring(decision.reason), ")")
end

--- Fresh data: read the refresh order (in a timer) and pre-fill the case.
function _M.done(decision, case, event, gateway)
  log(decision, case, event)
  if event.event_type ~= "order-status-updated" or not case.order_id then return end
  gateway.later(function(order_id, case_id)
    local client = gateway.client()
    local order, err = client:get_order(order_id)
    if not order then
      ngx.log(ngx.ERR, "truv: cannot read refresh order ", order_id, ": ", tostring(err))
      return
    end
    -- hand `order` to the case system here (an HTTP call through a cosocket,
    -- a queue, ...)
    ngx.log(ngx.NOTICE, "truv: case ", tostring(case_id), " has fresh data from order ", order.id)
  end, case.order_id, case.case_id)
end

--- The user must reconnect: create a new verification link (in a timer).
function _M.reverify(decision, case, event, gateway)
  log(decision, case, event)
  if event.event_type ~= "order-refresh-failed" or not case.original_order_id then return end
  gateway.later(function(original_id, case_id)
    local client = gateway.client()
    local order, err = client:get_order(original_id)
    local link
    if order then link, err = client:reverify(order) end
    if not link then
      ngx.log(ngx.ERR, "truv: no new link for case ", tostring(case_id), ": ", tostring(err))
      return
    end
    -- Truv's Order keeps no contact, so this new order has none (pass
    -- `contact = { email =, phone = }` from your case system to have Truv
    -- send it): link.share_url carries a bridge token and goes to the
    -- applicant through your mailer, never to a log; the log names the order
    ngx.log(ngx.NOTICE, "truv: new verification link for case ", tostring(case_id),
            " (order ", tostring(link.order_id), ")")
  end, case.original_order_id, case.case_id)
end

_M.retry = log      -- schedule POST /renewals/{case}/refresh again at decision.retry_at
_M.defer = log      -- not before decision.not_before
_M.no_data = log    -- connected, nothing returned: ask for documents instead
_M.fix = log        -- a person must look at it

function _M.wait() end   -- an intermediate step (login, parse, ...): nothing to do

return _M
