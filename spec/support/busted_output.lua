-- busted's plainTerminal output, plus a record of what was skipped.
--
-- Every spec runs under ctest (spec/CMakeLists.txt), whose summary counts a
-- spec file as passed when nothing in it failed: a check that marked itself
-- pending would vanish there. This handler writes each pending check, one
-- line "<check> (<why>)", to $TRUV_SKIPPED_FILE, and
-- scripts/test-summary prints them with their count after ctest's summary.
-- Only optional checks may be pending: a tool the suite needs and cannot
-- find fails its spec instead.
return function(options)
  local busted = require "busted"
  local handler = require("busted.outputHandlers.plainTerminal")(options)

  busted.subscribe({ "suite", "end" }, function()
    local path = os.getenv("TRUV_SKIPPED_FILE")
    if not path or path == "" then return nil, true end
    if handler.pendingsCount == 0 then
      os.remove(path)   -- nothing skipped in this run, whatever an earlier one left
      return nil, true
    end
    local f = io.open(path, "w")
    if f then
      for _, p in pairs(handler.pendings) do
        local why = type(p.message) == "string" and p.message or "pending"
        why = why:gsub("^[^:\n]*:%d+: ", ""):gsub("\n", " ")
        f:write(string.format("%s (%s)\n", p.name, why))
      end
      f:close()
    end
    return nil, true
  end)

  return handler
end
