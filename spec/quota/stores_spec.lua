-- The quota store contract (spec/support/store_conformance.lua) against the
-- C stores: memory, SQLite, and SQLite shared by two handles on one file.
local quota = require "truv.quota"
local conformance = require "spec.support.store_conformance"

local function temp_db()
  local path = os.tmpname()
  return path, function()
    for _, suffix in ipairs({ "", "-wal", "-shm" }) do os.remove(path .. suffix) end
  end
end

conformance.quota("memory", function(policy)
  return quota.memory(policy)
end)

conformance.quota("SQLite", function(policy)
  local path, cleanup = temp_db()
  return assert(quota.sqlite(path, policy)), cleanup
end, {
  make_pair = function(policy)
    local path = os.tmpname()
    finally(function()
      for _, suffix in ipairs({ "", "-wal", "-shm" }) do os.remove(path .. suffix) end
    end)
    return assert(quota.sqlite(path, policy)), assert(quota.sqlite(path, policy))
  end,
})
