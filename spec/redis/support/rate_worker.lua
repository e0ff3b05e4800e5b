-- One process of the fleet-limiter spec: draws from a shared budget as fast
-- as it may for `duration` seconds, then writes its admission times (Redis's
-- clock, one per line) to `out`. Optionally reports a 429 cooldown of
-- `cooldown` seconds at `cooldown_at` seconds into its run.
--   lua5.4 rate_worker.lua URL NAMESPACE PER_MINUTE WINDOW PRIORITY DURATION OUT [COOLDOWN_AT COOLDOWN]
local ratelimit = require "truv.ratelimit"
local core = require "truv.core"
local url, ns, per_minute, window, priority, duration, out, cd_at, cd =
  arg[1], arg[2], tonumber(arg[3]), tonumber(arg[4]), arg[5], tonumber(arg[6]), arg[7],
  tonumber(arg[8]), tonumber(arg[9])
local limiter = assert(ratelimit.redis{ url = url, namespace = ns, per_minute = per_minute,
                                        window = window, jitter = false })
local lines = {}
local start = core.monotonic()
local deadline, calls = start + duration, 0
while core.monotonic() < deadline and calls < 100000 do
  calls = calls + 1
  if cd_at and core.monotonic() - start >= cd_at then
    local _, remaining, now = assert(limiter:cooldown(cd))
    lines[#lines + 1] = string.format("cooldown %.3f %.3f", now, remaining)
    cd_at = nil
  end
  local ok, a = limiter:acquire(priority)
  assert(ok ~= nil, tostring(a))
  if ok then
    lines[#lines + 1] = string.format("%.3f", a)
  else
    core.sleep(math.min(a, deadline - core.monotonic(), 0.05))
  end
end
local f = assert(io.open(out, "w"))
f:write(table.concat(lines, "\n"), "\n")
f:close()
