-- Every finally(fn) of a test runs, last registered first. busted 2.1
-- keeps one finally per test (a second call replaces the first): a test
-- that starts a server and then makes a client with helpers that each
-- register their own cleanup lost every cleanup but the last (servers left
-- running, directories left behind, stress loads left on for their whole
-- timeout). Loaded by the helper every spec runs with (state_dir.lua): it
-- wraps the finally busted gives each test, at the test's start. A cleanup
-- that raises does not stop the others; the first error is raised after
-- them, so the test still fails.
local busted = require "busted"

busted.subscribe({ "test", "start" }, function(element)
  local env = element.env
  local set = env and env.finally
  if not set then return nil, true end
  local list = {}
  env.finally = function(fn)
    list[#list + 1] = fn
    if #list > 1 then return end
    set(function()
      local first
      for i = #list, 1, -1 do
        local ok, err = pcall(list[i])
        if not ok and first == nil then first = err end
      end
      if first ~= nil then error(first, 0) end
    end)
  end
  return nil, true
end)
