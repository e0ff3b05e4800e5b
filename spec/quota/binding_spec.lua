-- truv.quota beyond the store contract: connection keys, argument checking,
-- and what the C stores add (closing, collection, durable files).
local quota = require "truv.quota"

local T0 = 1700000000

local function temp_db()
  local path = os.tmpname()
  finally(function()
    for _, suffix in ipairs({ "", "-wal", "-shm" }) do os.remove(path .. suffix) end
  end)
  return path
end

describe("truv.quota.key", function()
  it("is 32 lowercase hex characters of a hash, never the token", function()
    local k = quota.key("tok_abc")
    assert.equal("ab2c5dc36326bc103ab6548f77cc4a3b", k)   -- SHA-256("truv-quota-v1:tok_abc")
    assert.equal(k, quota.key("tok_abc"))
    assert.are_not.equal(k, quota.key("tok_abd"))
    assert.is_nil(k:find("tok", 1, true))
  end)

  it("raises for anything but a non-empty string", function()
    assert.has_error(function() quota.key(nil) end)
    assert.has_error(function() quota.key("") end)
    assert.has_error(function() quota.key(42) end)
  end)
end)

describe("truv.quota constructors", function()
  it("default to 3 refreshes per 86400 s", function()
    local s = quota.memory()
    assert.equal(3, s.limit)
    assert.equal(86400, s.window)
    assert.equal("memory", s.kind)
    s:close()
  end)

  it("name the option that is wrong", function()
    assert.has_error(function() quota.memory{ limt = 3 } end,
      "bad argument #1 to 'memory' (unknown option 'limt')")
    assert.has_error(function() quota.memory{ limit = 0 } end,
      "bad argument #1 to 'memory' ('limit' must be an integer from 1 to 1000)")
    assert.has_error(function() quota.memory{ limit = 2.5 } end)
    assert.has_error(function() quota.memory{ window = "1d" } end)
    assert.has_error(function() quota.memory{ window = 0 } end)
    assert.has_error(function() quota.memory{ expected = -1 } end)
    assert.has_error(function() quota.memory("3") end)
    assert.has_error(function() quota.sqlite(nil) end)
    assert.has_error(function() quota.sqlite(temp_db(), { expected = 10 }) end,
      "bad argument #2 to 'sqlite' (unknown option 'expected')")
  end)

  it("return nil, err when a SQLite file cannot be opened", function()
    local s, err = quota.sqlite("/nonexistent-dir/x/quota.db")
    assert.is_nil(s)
    assert.equal("internal", err.kind)
    assert.matches("opening", err.message)
    assert.is_string(tostring(err))
  end)
end)

describe("C quota stores", function()
  it("issue tickets as decimal strings", function()
    local s = quota.memory()
    assert.matches("^%d+$", s:reserve({ quota.key("a") }, T0))
    s:close()
  end)

  it("say which key is not a quota key", function()
    local s = quota.memory()
    assert.has_error(function() s:reserve({ quota.key("a"), "tok_raw" }, T0) end,
      "bad argument #1 to 'reserve' (keys[2] is not a quota key (32 hex characters))")
    assert.has_error(function() s:usage("tok_raw", T0) end)
    assert.has_error(function() s:release({ quota.key("a") }, nil) end)
    s:close()
  end)

  it("take more keys than fit the C stack", function()
    local s, keys = quota.memory(), {}
    for i = 1, 40 do keys[i] = quota.key("many-" .. i) end
    keys[41] = keys[1]
    local t = assert(s:reserve(keys, T0))
    for i = 1, 40 do assert.equal(1, (s:usage(keys[i], T0))) end
    s:record_limit(keys[40], T0)
    local ok, not_before, spent = s:reserve(keys, T0 + 1)
    assert.is_false(ok)
    assert.equal(T0 + 86400, not_before)
    assert.same({ keys[40] }, spent)
    assert.is_true(s:release(keys, t))
    assert.equal(0, (s:usage(keys[1], T0)))
    s:close()
  end)

  it("raise when used after close; close twice is fine", function()
    local s = quota.memory()
    s:close()
    s:close()
    assert.has_error(function() s:reserve({ quota.key("a") }, T0) end, "truv: the quota store is closed")
    assert.equal(3, s.limit)
    assert.matches("closed", tostring(s))
  end)

  it("are closed by the garbage collector", function()
    for _ = 1, 50 do quota.memory{ expected = 1000 } end
    assert.is_not_nil(quota.sqlite(temp_db()))   -- dropped at once
    collectgarbage()
    collectgarbage()
  end)

  it("keep a SQLite file's log across reopening", function()
    local path = temp_db()
    local a = assert(quota.sqlite(path))
    local k = quota.key("durable")
    local t1 = a:reserve({ k }, T0)
    a:close()
    local b = assert(quota.sqlite(path))
    assert.equal(1, (b:usage(k, T0)))
    local t2 = b:reserve({ k }, T0 + 1)
    assert.is_true(tonumber(t2) > tonumber(t1))
    assert.is_true(b:release({ k }, t1))
    assert.equal(1, (b:usage(k, T0 + 1)))
    b:close()
  end)

  it("are recognised by is_store, as is a Lua store with the same methods", function()
    local s = quota.memory()
    assert.is_true(quota.is_store(s))
    assert.is_true(quota.is_store({ reserve = print, release = print, record_limit = print,
                                    usage = print, limit = 3, window = 86400 }))
    assert.is_false(quota.is_store({ reserve = print }))
    assert.is_false(quota.is_store(42))
    assert.is_false(quota.is_store(nil))
    s:close()
  end)
end)
