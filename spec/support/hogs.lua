-- CPU pressure for stress specs: N busy shell loops, each bounded by
-- timeout(1), so that the processes under test get preempted anywhere.
--   local hogs = require "spec.support.hogs"
--   local pids = hogs.start(tonumber(os.getenv("TRUV_STRESS_HOGS") or "") or 0)
--   ...
--   hogs.stop(pids)
local openresty = require "spec.support.openresty"

local M = {}

--- Starts n busy loops (each gone after at most `seconds`, default 900);
-- returns their pids.
function M.start(n, seconds)
  local pids = {}
  for i = 1, n do
    local p = assert(io.popen(openresty.NOPRELOAD .. "sh -c '(exec timeout " ..
                              math.floor(seconds or 900) .. " sh -c " ..
                              "\"while :; do :; done\") >/dev/null 2>&1 & echo $!'"))
    pids[i] = tonumber(p:read("l"))
    p:close()
  end
  return pids
end

function M.stop(pids)
  for _, pid in ipairs(pids or {}) do
    os.execute(openresty.NOPRELOAD .. "kill " .. pid .. " 2>/dev/null")
  end
end

return M
