-- The gateway's handlers in the OpenResty specs (found before the example's
-- truv_handlers.lua on the package path): every call is recorded in the
-- `test_events` shared dictionary, with the worker that made it; "done" of
-- a refresh the gateway started also reads the refresh order in a timer
-- (gateway.later), and "reverify" makes the new verification link there,
-- as the example does, and records that too.
local truv = require "truv"

local ngx = ngx
local _M = {}

local function record(t)
  t.pid = ngx.worker.pid()
  assert(ngx.shared.test_events:rpush("events", truv.encode(t)))
end

local function handler(route)
  return function(decision, case, event, gateway)
    record{ kind = "handled", route = route, reason = decision.reason,
            not_before = decision.not_before, retry_at = decision.retry_at,
            case_id = case.case_id, order_id = case.order_id,
            original_order_id = case.original_order_id, webhook_id = event.webhook_id,
            event_type = event.event_type, status = event.status,
            refresh_order_id = decision.refresh_order_id, by_route = decision.by_route }
    if route == "done" and decision.refresh_order_id then
      gateway.later(function(order_id, case_id)
        local order, err = gateway.client():get_order(order_id)
        record{ kind = "later", phase = ngx.get_phase(), case_id = case_id, order_id = order_id,
                ok = order ~= nil and order.id == order_id, error = err and tostring(err) }
      end, decision.refresh_order_id, case.case_id)
    end
    -- (a refresh's one decision; before there was one, the example made a link
    -- on each order-refresh-failed)
    if route == "reverify" and (decision.refresh_order_id
                                or event.event_type == "order-refresh-failed") then
      gateway.later(function(original_id, case_id)
        local client = gateway.client()
        local order, err = client:get_order(original_id)
        local link
        if order then link, err = client:reverify(order) end
        record{ kind = "link", case_id = case_id, ok = link ~= nil,
                order_id = link and link.order_id, error = err and tostring(err) }
      end, case.original_order_id, case.case_id)
    end
    if event.event_type == "test-handler-fails" then error("the case system is down") end
  end
end

for _, r in ipairs{ "done", "reverify", "retry", "defer", "no_data", "fix", "wait" } do
  _M[r] = handler(r)
end

--- GET /_test/events: everything recorded since the last call.
function _M.dump()
  local out = {}
  local dict = ngx.shared.test_events
  while true do
    local v = dict:lpop("events")
    if not v then break end
    out[#out + 1] = truv.decode(v, "table")
  end
  ngx.header["Content-Type"] = "application/json"
  ngx.say(#out == 0 and "[]" or truv.encode(out))
end

return _M
