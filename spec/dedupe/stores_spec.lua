-- The de-duplication store contract (spec/support/store_conformance.lua)
-- against the C stores: memory, SQLite, and SQLite shared by two handles.
local dedupe = require "truv.dedupe"
local conformance = require "spec.support.store_conformance"

local function remove_db(path)
  for _, suffix in ipairs({ "", "-wal", "-shm" }) do os.remove(path .. suffix) end
end

conformance.dedupe("memory", function()
  return dedupe.memory()
end)

conformance.dedupe("SQLite", function()
  local path = os.tmpname()
  return assert(dedupe.sqlite(path)), function() remove_db(path) end
end, {
  make_pair = function()
    local path = os.tmpname()
    finally(function() remove_db(path) end)
    return assert(dedupe.sqlite(path)), assert(dedupe.sqlite(path))
  end,
})
