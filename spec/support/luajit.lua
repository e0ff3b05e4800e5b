-- Running a script under LuaJIT with the LuaJIT build of truv.core, for the
-- specs that check the binding behaves the same there as in Lua 5.4.
local files = require "spec.support.files"

local M = {}

--- The build directory that holds the LuaJIT truv.core. The LuaJIT flavour
-- is part of the suite (the OpenResty target): a missing build or tool
-- raises, so the spec fails instead of passing without having checked.
-- `tools`: commands the script needs besides luajit (scripts/deps installs
-- them all).
function M.build(tools)
  local build = os.getenv("TRUV_BUILD_DIR")
  local f = build and io.open(build .. "/lua/luajit/truv/core.so", "rb")
  if not f then
    error("the LuaJIT build of truv.core is missing under " .. tostring(build) ..
          " (LUA_FLAVOR must include luajit; set TRUV_BUILD_DIR)", 2)
  end
  f:close()
  for _, tool in ipairs{ "luajit", table.unpack(tools or {}) } do
    if not os.execute("command -v " .. tool .. " >/dev/null 2>&1") then
      error(tool .. " is not installed (scripts/deps installs it)", 2)
    end
  end
  return build
end

--- Runs the script file `path` under luajit, truv.core from `build` and the
-- Lua modules and fixtures from the sources; returns what it printed
-- (stdout and stderr together).
function M.run(build, path)
  local src = os.getenv("TRUV_SOURCE_DIR") or "."
  local p = assert(io.popen(string.format(
    "LUA_CPATH=%s LUA_PATH=%s TRUV_FIXTURES=%s luajit %s 2>&1",
    files.quote(build .. "/lua/luajit/?.so;;"), files.quote(src .. "/lua/?.lua;;"),
    files.quote(os.getenv("TRUV_FIXTURES") or (src .. "/spec/fixtures")), files.quote(path))))
  local out = p:read("a")
  p:close()
  return out
end

return M
