-- CPU pressure for stress specs: N busy shell loops, each bounded by
-- timeout(1), so that the processes under test get preempted anywhere; and
-- disk pressure (start_disk).
--   local hogs = require "spec.support.hogs"
--   local pids = hogs.start(tonumber(os.getenv("TRUV_STRESS_HOGS") or "") or 0)
--   ...
--   hogs.stop(pids)
local openresty = require "spec.support.openresty"

local M = {}

-- Starts shell `loop` in the background, gone after at most `seconds`;
-- returns its pid.
local function background(loop, seconds)
  local p = assert(io.popen(openresty.NOPRELOAD .. "sh -c '(exec timeout " ..
                            math.floor(seconds) .. " sh -c \"" .. loop .. "\") " ..
                            ">/dev/null 2>&1 & echo $!'"))
  local pid = tonumber(p:read("l"))
  p:close()
  return pid
end

--- Starts n busy loops (each gone after at most `seconds`, default 900);
-- returns their pids.
function M.start(n, seconds)
  local pids = {}
  for i = 1, n do pids[i] = background("while :; do :; done", seconds or 900) end
  return pids
end

--- Starts a disk writer: a loop writing `mb` MB (default 128) to a file in
-- `dir` and flushing it to the disk (dd conv=fdatasync), gone after at most
-- `seconds` (default 120), so that writeback pressure stalls the file
-- operations (open, rename) of the processes under test. Returns its pid.
function M.start_disk(dir, seconds, mb)
  return background("while :; do dd if=/dev/zero of=" .. dir .. "/disk-hog bs=1M count=" ..
                    math.floor(mb or 128) .. " conv=fdatasync; done", seconds or 120)
end

function M.stop(pids)
  for _, pid in ipairs(pids or {}) do
    os.execute(openresty.NOPRELOAD .. "kill " .. pid .. " 2>/dev/null")
  end
end

return M
