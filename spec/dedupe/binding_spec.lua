-- truv.dedupe beyond the store contract: argument checking and what the C
-- stores add (closing, durable files shared with the quota tables).
local dedupe = require "truv.dedupe"
local quota = require "truv.quota"

local T0 = 1700000000

local function temp_db()
  local path = os.tmpname()
  finally(function()
    for _, suffix in ipairs({ "", "-wal", "-shm" }) do os.remove(path .. suffix) end
  end)
  return path
end

describe("truv.dedupe", function()
  it("checks its arguments", function()
    assert.has_error(function() dedupe.memory("big") end)
    assert.has_error(function() dedupe.memory(-1) end)
    assert.has_error(function() dedupe.sqlite(nil) end)
    assert.has_error(function() dedupe.sqlite("") end)
  end)

  it("returns nil, err when a SQLite file cannot be opened", function()
    local s, err = dedupe.sqlite("/nonexistent-dir/x/hooks.db")
    assert.is_nil(s)
    assert.equal("internal", err.kind)
  end)

  it("C stores raise when used after close; close twice is fine", function()
    local s = dedupe.memory(100)
    s:close()
    s:close()
    assert.has_error(function() s:seen("x", T0, 60) end, "truv: the dedupe store is closed")
  end)

  it("keeps ids across reopening a SQLite file, which may hold quota tables too", function()
    local path = temp_db()
    local q = assert(quota.sqlite(path))
    local a = assert(dedupe.sqlite(path))
    assert.is_true(a:seen("wh-1", T0, 3600))
    assert.is_string(q:reserve({ quota.key("tok") }, T0))
    a:close()
    local b = assert(dedupe.sqlite(path))
    assert.is_false(b:seen("wh-1", T0 + 1, 3600))
    assert.equal(1, (q:usage(quota.key("tok"), T0)))
    b:close()
    q:close()
  end)

  it("takes ids with any bytes", function()
    local s = dedupe.memory()
    assert.is_true(s:seen("a\0b", T0, 60))
    assert.is_true(s:seen("a\0c", T0, 60))
    assert.is_false(s:seen("a\0b", T0, 60))
    s:close()
  end)
end)
