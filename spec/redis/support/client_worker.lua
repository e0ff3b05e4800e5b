-- One process of the fleet-limiter spec's sandbox case: a truv client
-- sharing the fleet's rate budget reads one order again and again for
-- `duration` seconds (bounded: 10000 calls), then writes what happened:
-- "ok N", "throttled N" (Truv answered 429), "held N" (the fleet's cooldown
-- held the request back: never sent).
--   lua5.4 client_worker.lua REDIS_URL NAMESPACE BASE_URL CLIENT_ID SECRET ORDER DURATION OUT
local truv = require "truv"
local core = require "truv.core"
local ratelimit = require "truv.ratelimit"
local url, ns, base_url, client_id, secret, order, duration, out =
  arg[1], arg[2], arg[3], arg[4], arg[5], arg[6], tonumber(arg[7]), arg[8]
-- sleeps are capped at 20 ms (Truv's Retry-After can be a minute: the run
-- stays bounded); what holds the requests back is the fleet's cooldown
local client = assert(truv.new{ client_id = client_id, secret = secret, base_url = base_url,
  quota = false, retry = { attempts = 1 }, sleep = function(s) core.sleep(math.min(s, 0.02)) end,
  ratelimit = assert(ratelimit.redis{ url = url, namespace = ns, max_wait = 0.05 }) })
local counts = { ok = 0, throttled = 0, held = 0, other = 0 }
local deadline, calls = core.monotonic() + duration, 0
while core.monotonic() < deadline and calls < 10000 do
  calls = calls + 1
  local doc, err = client:get_order(order)
  if doc then counts.ok = counts.ok + 1
  elseif err.status == 429 then counts.throttled = counts.throttled + 1
  elseif err.code == "fleet_cooldown" then
    counts.held = counts.held + 1
    core.sleep(0.02)
  else counts.other = counts.other + 1 end
end
local f = assert(io.open(out, "w"))
for k, v in pairs(counts) do f:write(k, " ", v, "\n") end
f:close()
