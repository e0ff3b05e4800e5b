-- One store handle shared by many coroutines that interleave between their
-- calls (as the requests of one process do): the C stores' calls never
-- yield, so each is atomic and the limit holds exactly. The light threads
-- of one nginx worker are checked in spec/openresty/stores_spec.lua.
local quota = require "truv.quota"
local dedupe = require "truv.dedupe"
local files = require "spec.support.files"

local T0 = 1700000000

-- Runs `n` coroutines of body(i) round-robin until all are done (bounded).
local function run_all(n, body)
  local cos = {}
  for i = 1, n do cos[i] = coroutine.create(body) end
  local live = n
  for _ = 1, 1e6 do
    if live == 0 then return end
    for i = 1, n do
      local co = cos[i]
      if co and coroutine.status(co) ~= "dead" then
        local ok, err = coroutine.resume(co, i)
        assert(ok, err)
        if coroutine.status(co) == "dead" then
          cos[i] = nil
          live = live - 1
        end
      end
    end
  end
  error("coroutines still running")
end

local function temp_db()
  local path = os.tmpname()
  finally(function()
    for _, suffix in ipairs({ "", "-wal", "-shm" }) do os.remove(path .. suffix) end
  end)
  return path
end

local function hammer(store, limit)
  local keys = { quota.key("co-a"), quota.key("co-b") }
  local got, tickets = 0, {}
  run_all(40, function()
    for j = 1, 20 do
      local t, err = store:reserve(keys, T0 + j / 1000)
      assert(t ~= nil, tostring(err))
      if t then
        assert(not tickets[t], "ticket " .. t .. " issued twice")
        tickets[t], got = true, got + 1
      end
      coroutine.yield()
      -- in the first half, some reservations are given back between two yields
      if t and j % 2 == 0 and j <= 10 then
        assert(store:release(keys, t))
        got = got - 1
      end
      coroutine.yield()
    end
  end)
  assert.equal(limit, got)
  assert.equal(limit, (store:usage(keys[1], T0 + 1)))
  assert.equal(limit, (store:usage(keys[2], T0 + 1)))
end

describe("a quota store shared by interleaving coroutines", function()
  it("admits exactly the limit (memory store)", function()
    local store = quota.memory{ limit = 300 }
    hammer(store, 300)
    store:close()
  end)

  it("admits exactly the limit (SQLite store)", function()
    local store = assert(quota.sqlite(temp_db(), { limit = 300 }))
    hammer(store, 300)
    store:close()
  end)
end)

describe("a dedupe store shared by interleaving coroutines", function()
  local function check(store)
    local firsts = {}
    run_all(30, function()
      for j = 1, 50 do
        local r = store:seen("wh-" .. j, T0, 3600)
        assert(r ~= nil)
        if r then firsts[j] = (firsts[j] or 0) + 1 end
        coroutine.yield()
      end
    end)
    for j = 1, 50 do assert.equal(1, firsts[j], "wh-" .. j) end
  end

  it("sees each id first exactly once (memory store)", function()
    local store = dedupe.memory()
    check(store)
    store:close()
  end)

  it("sees each id first exactly once (SQLite store)", function()
    local path = files.tmpdir("truv-co") .. "/d.db"
    finally(function() os.execute("LD_PRELOAD= rm -rf " .. files.quote(path:match("^(.*)/"))) end)
    local store = assert(dedupe.sqlite(path))
    check(store)
    store:close()
  end)
end)
