-- busted --helper for every spec under ctest (spec/CMakeLists.txt): each
-- spec file has a state directory of its own ($XDG_STATE_HOME, under the
-- build directory), where truv-renew and truv.renewal keep the quota store
-- by default; it starts empty at every run, so that one spec's refreshes
-- (the sandbox makes the same tokens for the same seed) never spend
-- another's quota, nor an earlier run's the next one's.
local state = os.getenv("XDG_STATE_HOME")
local build = os.getenv("TRUV_BUILD_DIR")
if state and build and state:sub(1, #build + 12) == build .. "/spec-state/" then
  assert(os.execute("rm -rf '" .. state .. "' && mkdir -p '" .. state .. "'"))
end

-- and every finally(fn) of a test runs (spec/support/finally.lua)
require "spec.support.finally"
