-- The gateway's handlers in the OpenResty specs (found before the example's
-- truv_handlers.lua on the package path): every call is recorded in the
-- `test_events` shared dictionary, with the worker that made it; "done" on
-- an order-status-updated also reads the refresh order in a timer
-- (gateway.later), as the example does, and records that too.
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
            event_type = event.event_type, status = event.status }
    if route == "done" and event.event_type == "order-status-updated" and case.order_id then
      gateway.later(function(order_id, case_id)
        local order, err = gateway.client():get_order(order_id)
        record{ kind = "later", phase = ngx.get_phase(), case_id = case_id, order_id = order_id,
                ok = order ~= nil and order.id == order_id, error = err and tostring(err) }
      end, case.order_id, case.case_id)
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
