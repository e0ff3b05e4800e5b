-- core.journal_open: the durable record of a renewal batch, from Lua.
local core = require "truv.core"

local under_valgrind = os.getenv("TRUV_UNDER_VALGRIND") ~= nil
-- a sanitizer's allocator keeps freed memory in quarantine: RSS says nothing then
local under_asan = os.getenv("ASAN_OPTIONS") ~= nil

-- Temporary journals, removed after each test (with their -wal, -shm, -lock).
local temps = {}

local function temp_path()
  local path = os.tmpname()
  os.remove(path)
  temps[#temps + 1] = path
  return path
end

local function remove_temps()
  for _, path in ipairs(temps) do
    for _, suffix in ipairs({ "", "-wal", "-shm", "-lock" }) do os.remove(path .. suffix) end
  end
  temps = {}
end

local function rss_kb()
  local f = assert(io.open("/proc/self/status"))
  local s = f:read("a")
  f:close()
  return tonumber(s:match("VmRSS:%s*(%d+)"))
end

local function ids(iter)
  local out = {}
  for rec in iter do out[#out + 1] = rec.case_id end
  return table.concat(out, " ")
end

describe("core.journal_open", function()
  after_each(function()
    collectgarbage()   -- journals a failed test left open
    remove_temps()
  end)

  it("creates a journal and opens it again with its data", function()
    local path = temp_path()
    local j = assert(core.journal_open(path))
    assert.matches("truv.journal", tostring(j))
    assert.is_true(j:put("c1", { state = "planned", order_id = "o1" }))
    assert.is_true(j:close())
    j = assert(core.journal_open(path, { sync = "full", busy_timeout_ms = 100 }))
    assert.equal("o1", j:get("c1").order_id)
    j:close()
  end)

  it("closes at the end of a scope that declares it <close>, keeping what was written", function()
    local path = temp_path()
    -- loaded from text: the attribute is Lua 5.4 syntax
    local scope = assert(load([[
      local core, path = ...
      local kept
      do
        local j <close> = assert(core.journal_open(path))
        assert(j:put("c1", { state = "planned" }))
        kept = j
      end
      return kept
    ]]))
    assert.equal("truv.journal (closed)", tostring(scope(core, path)))
    local j = assert(core.journal_open(path))
    assert.equal("planned", j:get("c1").state)
    j:close()
  end)

  it("keeps run-level facts", function()
    local j = assert(core.journal_open(temp_path()))
    assert.is_nil(j:meta_get("input_hash"))
    assert.is_true(j:meta_set("input_hash", "sha256:0f"))
    assert.is_true(j:meta_set("concurrency", 32))
    assert.is_true(j:meta_set("started_at", 1700000000.5))
    assert.is_true(j:meta_set("resumed", false))
    assert.equal("sha256:0f", j:meta_get("input_hash"))
    assert.equal(32, j:meta_get("concurrency"))
    assert.equal(1700000000.5, j:meta_get("started_at"))
    assert.is_false(j:meta_get("resumed"))
    assert.is_true(j:meta_set("input_hash", nil))
    assert.is_nil(j:meta_get("input_hash"))
    assert.is_true(j:meta_set("concurrency", core.null))
    assert.is_nil(j:meta_get("concurrency"))
    j:close()
  end)

  describe("put and get", function()
    local j
    before_each(function() j = assert(core.journal_open(temp_path())) end)
    after_each(function() j:close() end)

    it("round-trips strings, integers, floats and booleans, in columns and beyond", function()
      assert.is_true(j:put("c1", {
        state = "sending", sent_at = 1700000000.25, attempts = 1, line = 7,
        input = '{"order_id":"o1"}', baseline_refresh_order = "r0",
        quota_ticket = 12, handler_error = "boom", bridge_tokens = 2, adopted = true,
        ratio = 0.5,
      }))
      local r = j:get("c1")
      assert.same({
        case_id = "c1", state = "sending", sent_at = 1700000000.25, attempts = 1, line = 7,
        input = '{"order_id":"o1"}', baseline_refresh_order = "r0",
        quota_ticket = 12, handler_error = "boom", bridge_tokens = 2, adopted = true,
        ratio = 0.5,
      }, r)
      assert.equal(math.type and "integer" or "number", math.type and math.type(r.attempts) or "number")
    end)

    it("starts a new case as 'new' and updates only the fields it is given", function()
      assert.is_true(j:put("c1", { order_id = "o1", note = "first" }))
      assert.equal("new", j:get("c1").state)
      assert.is_true(j:put("c1", { state = "planned" }))
      local r = j:get("c1")
      assert.equal("planned", r.state)
      assert.equal("o1", r.order_id)
      assert.equal("first", r.note)
    end)

    it("clears a field set to core.null", function()
      assert.is_true(j:put("c1", { state = "routed", route = "retry", retry_at = 5, note = "x" }))
      assert.is_true(j:put("c1", { retry_at = core.null, note = core.null, route = core.null }))
      assert.same({ case_id = "c1", state = "routed" }, j:get("c1"))
    end)

    it("returns nil for an unknown case", function()
      assert.is_nil(j:get("nope"))
    end)

    it("refuses an unknown or cleared state without writing anything", function()
      local ok, err = j:put("c1", { state = "sendng", order_id = "o1" })
      assert.is_nil(ok)
      assert.equal("invalid", err.kind)
      assert.equal("state", err.fields[1].field)
      assert.is_nil(j:get("c1"))
      ok, err = j:put("c1", { state = core.null })
      assert.is_nil(ok)
      assert.matches("cleared", err.fields[1].message)
      ok, err = j:put("c1", { route = 3 })
      assert.is_nil(ok)
      assert.equal("route", err.fields[1].field)
    end)

    it("raises on values a journal cannot hold", function()
      assert.has_error(function() j:put("c1", { state = "new", nested = {} }) end)
      assert.has_error(function() j:put("c1", { print }) end)
      assert.has_error(function() j:put("c1", { f = print }) end)
      assert.has_error(function() j:put("c1", "state") end)
      assert.has_error(function() j:put(nil, {}) end)
      assert.has_error(function() j:meta_set("k", {}) end)
    end)
  end)

  describe("groups", function()
    it("commits a group at once, visible to another handle only after commit", function()
      local path = temp_path()
      local j, reader = assert(core.journal_open(path)), assert(core.journal_open(path))
      assert.is_true(j:begin())
      for i = 1, 20 do assert.is_true(j:put("c" .. i, { state = "sending" })) end
      assert.is_nil(reader:get("c1"))
      assert.is_true(j:commit())
      assert.equal("sending", reader:get("c20").state)
      j:close()
      reader:close()
    end)

    it("rolls a group back", function()
      local j = assert(core.journal_open(temp_path()))
      j:put("c1", { state = "planned" })
      j:begin()
      j:put("c1", { state = "sending" })
      j:put("c2", { state = "new" })
      assert.is_true(j:rollback())
      assert.equal("planned", j:get("c1").state)
      assert.is_nil(j:get("c2"))
      j:close()
    end)

    it("does not nest, and commit without begin does nothing", function()
      local j = assert(core.journal_open(temp_path()))
      assert.is_true(j:commit())
      j:begin()
      assert.has_error(function() j:begin() end,
                       "truv: journal:begin() inside an open group (groups do not nest)")
      j:commit()
      j:close()
    end)

    it("close commits an open group", function()
      local path = temp_path()
      local j = assert(core.journal_open(path))
      j:begin()
      j:put("c1", { state = "sending" })
      assert.is_true(j:close())
      j = assert(core.journal_open(path))
      assert.equal("sending", j:get("c1").state)
      j:close()
    end)
  end)

  describe("each, counts", function()
    local j
    before_each(function()
      j = assert(core.journal_open(temp_path()))
      j:begin()
      for i = 1, 9 do
        local f = { state = "sending" }
        if i % 3 == 0 then f = { state = "routed", route = i == 9 and "reverify" or "done" } end
        if i == 8 then f = { state = "failed", error = "bad row" } end
        j:put("c" .. i, f)
      end
      j:commit()
    end)
    after_each(function() j:close() end)

    it("visits cases in insertion order, filtered", function()
      assert.equal("c1 c2 c3 c4 c5 c6 c7 c8 c9", ids(j:each()))
      assert.equal("c1 c2 c4 c5 c7", ids(j:each{ state = "sending" }))
      assert.equal("c3 c6 c8 c9", ids(j:each{ state = { "routed", "failed" } }))
      assert.equal("c1 c2 c4 c5 c7", ids(j:each{ not_state = { "routed", "failed" } }))
      assert.equal("c9", ids(j:each{ route = "reverify" }))
      assert.equal("c3 c6", ids(j:each{ route = "done", state = "routed" }))
      assert.equal("", ids(j:each{ state = "waiting" }))
    end)

    it("hands out whole cases", function()
      for rec in j:each{ state = "failed" } do
        assert.same({ case_id = "c8", state = "failed", error = "bad row" }, rec)
      end
    end)

    it("allows writes while iterating, visiting each case once", function()
      local seen = 0
      for rec in j:each{ state = "sending" } do
        seen = seen + 1
        assert.is_true(j:put(rec.case_id, { state = "sent" }))
        if seen == 1 then j:put("late", { state = "sending" }) end
      end
      assert.equal(6, seen)
      assert.equal(0, j:counts().sending or 0)
    end)

    it("may be left early", function()
      for rec in j:each() do -- luacheck: ignore 512 (left at once, on purpose)
        assert.equal("c1", rec.case_id)
        break
      end
      assert.equal("c1 c2", ids(coroutine.wrap(function()
        for rec in j:each() do
          coroutine.yield(rec)
          if rec.case_id == "c2" then return end
        end
      end)))
    end)

    it("refuses an unknown filter", function()
      assert.has_error(function() j:each{ status = "sent" } end)
      assert.has_error(function() j:each{ state = 3 } end)
    end)

    it("counts per state and per route", function()
      assert.same({ sending = 5, routed = 3, failed = 1 }, j:counts())
      assert.same({ done = 2, reverify = 1 }, j:route_counts())
    end)
  end)

  it("raises when used after close, and closes twice quietly", function()
    local j = assert(core.journal_open(temp_path()))
    local iter = j:each()
    j:close()
    j:close()
    assert.equal("truv.journal (closed)", tostring(j))
    assert.has_error(function() j:get("c1") end)
    assert.has_error(function() iter() end)
  end)

  it("refuses a journal with a newer schema, saying so", function()
    local path = temp_path()
    local j = assert(core.journal_open(path))
    j:close()
    -- the schema version is the header's user_version (offset 60, big-endian)
    local f = assert(io.open(path, "r+b"))
    f:seek("set", 60)
    f:write("\0\0\0\7")
    f:close()
    local ok, err = core.journal_open(path)
    assert.is_nil(ok)
    assert.equal("internal", err.kind)
    assert.equal("schema_newer", err.code)
    assert.matches("schema version 7", err.message)
  end)

  it("refuses a file that is not a journal", function()
    local path = temp_path()
    local f = assert(io.open(path, "wb"))
    f:write("not a database at all, just text that is long enough to be a header......")
    f:close()
    local ok, err = core.journal_open(path)
    assert.is_nil(ok)
    assert.equal("internal", err.kind)
  end)

  it("opened exclusively, refuses a second process", function()
    if under_valgrind then return pending("a second interpreter under valgrind is too slow") end
    local path = temp_path()
    local j = assert(core.journal_open(path, { exclusive = true }))
    local cmd = string.format("lua5.4 -e %q 2>&1",
      "package.cpath = " .. string.format("%q", package.cpath) .. "\n" ..
      "local core = require 'truv.core'\n" ..
      "local ok, err = core.journal_open(" .. string.format("%q", path) .. ", { exclusive = true })\n" ..
      "io.write(ok and 'opened' or err.code)")
    local p = io.popen(cmd)
    local out = p:read("a")
    p:close()
    assert.equal("busy", out)
    j:close()
  end)

  -- The lock belongs to the file, not to the name it was opened by: through
  -- a symlink, a hard link or a path with extra components it is the same
  -- journal, and two runs on it at once would refresh cases twice.
  it("opened exclusively, refuses a second process that names the file another way", function()
    if under_valgrind then return end
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir " .. dir))
    local path = dir .. "/run.journal"
    local j = assert(core.journal_open(path, { exclusive = true }))
    assert(os.execute(string.format("ln -s run.journal %s/link && ln %s %s/hard", dir, path, dir)))
    local function second(name)
      local cmd = string.format("lua5.4 -e %q 2>&1",
        "package.cpath = " .. string.format("%q", package.cpath) .. "\n" ..
        "local core = require 'truv.core'\n" ..
        "local ok, err = core.journal_open(" .. string.format("%q", name) .. ", { exclusive = true })\n" ..
        "io.write(ok and 'opened' or err.code)")
      local p = io.popen(cmd)
      local out = p:read("a")
      p:close()
      return out
    end
    assert.equal("busy", second(dir .. "/link"))
    assert.equal("busy", second(dir .. "/hard"))
    assert.equal("busy", second(dir .. "/./run.journal"))
    -- a reader (a report) still opens it, and sees what the holder wrote
    assert(j:put("c1", { state = "routed", route = "done" }))
    local r = assert(core.journal_open(dir .. "/link"))
    assert.equal("done", r:get("c1").route)
    r:close()
    j:close()
    -- once closed, the next run takes it through any name
    assert.equal("opened", second(dir .. "/link"))
    os.execute("rm -rf " .. dir)
  end)

  -- A writer killed with SIGKILL at a random point: the journal reopens
  -- consistent, with every group it reported committed.
  it("keeps every committed write of a writer killed with SIGKILL", function()
    if under_valgrind then return pending("killed writers under valgrind are too slow") end
    for round = 1, 3 do
      local path = temp_path()
      local script = string.format([[
        package.cpath = %q
        local core = require "truv.core"
        local pid = io.open("/proc/self/stat"):read("l"):match("^(%%d+)")
        io.write(pid, "\n") io.flush()
        local j = assert(core.journal_open(%q))
        for g = 0, 1e9 do
          assert(j:begin())
          for i = 0, 9 do
            assert(j:put("c" .. (g * 10 + i), { state = "sending", group = g, sent_at = g + 0.5 }))
            if g > 0 then assert(j:put("c" .. ((g - 1) * 10 + i), { state = "sent" })) end
          end
          assert(j:commit())
          io.write(g, "\n") io.flush()
        end]], package.cpath, path)
      local p = io.popen("exec lua5.4 -e " .. string.format("%q", script))
      local pid = p:read("l")
      local last, target = -1, 20 + round * 15
      while last < target do last = tonumber(p:read("l")) end
      os.execute("kill -9 " .. pid)
      for line in p:lines() do last = tonumber(line) or last end
      p:close()

      local j = assert(core.journal_open(path))
      local per_group, max_group = {}, -1
      for rec in j:each() do
        per_group[rec.group] = (per_group[rec.group] or 0) + 1
        if rec.group > max_group then max_group = rec.group end
      end
      for g = 0, last do assert.equal(10, per_group[g], "group " .. g) end
      assert.is_true(max_group <= last + 1)
      if max_group == last + 1 then assert.equal(10, per_group[max_group]) end
      for g = 0, max_group - 1 do
        for i = 0, 9 do assert.equal("sent", j:get("c" .. (g * 10 + i)).state) end
      end
      j:close()
    end
  end)

  -- 100 000 cases, five writes each, group commits of 250 writes: what a
  -- batch does to its journal. Measured and reported, not timed as a test.
  it("journals a large batch with flat memory", function()
    local n = under_valgrind and 1000 or 100000
    local j = assert(core.journal_open(temp_path()))
    local states = { "planned", "sending", "sent", "waiting", "routed" }
    local writes, t0 = 0, core.monotonic()
    local rss = {}
    j:begin()
    local function wrote()
      writes = writes + 1
      if writes % 250 == 0 then
        assert(j:commit())
        assert(j:begin())
      end
    end
    for i = 1, n do
      assert(j:put(string.format("case-%06d", i), {
        state = "new", line = i, order_id = "0123456789abcdef0123",
        input = '{"case_id":"c","order_id":"0123456789abcdef0123","product":"income"}' }))
      wrote()
    end
    for pass = 1, 5 do
      for i = 1, n do
        assert(j:put(string.format("case-%06d", i), {
          state = states[pass], updated_at = 1.7e9 + i, attempts = pass,
          refresh_order_id = pass >= 3 and "fedcba9876543210" or nil,
          route = pass == 5 and "done" or nil }))
        wrote()
      end
      collectgarbage()
      rss[pass] = rss_kb()
    end
    assert(j:commit())
    local took = core.monotonic() - t0
    print(string.format("\njournal: %d cases, %d writes in %.2f s (%.0f writes/s); RSS %d kB "
                        .. "after pass 2, %d kB after pass 5", n, writes, took, writes / took,
                        rss[2], rss[5]))
    assert.same({ routed = n }, j:counts())
    assert.same({ done = n }, j:route_counts())
    if not (under_valgrind or under_asan) then assert.is_true(rss[5] - rss[2] < 8 * 1024) end
    j:close()
  end)
end)

describe("journal:delete", function()
  teardown(remove_temps)
  it("removes a case and nothing else; an unknown one is a no-op", function()
    local j = assert(core.journal_open(temp_path()))
    assert(j:put("a", { state = "failed", line = 3 }))
    assert(j:put("b", { state = "new" }))
    assert.is_true(j:delete("a"))
    assert.is_nil(j:get("a"))
    assert.equal("new", j:get("b").state)
    assert.is_true(j:delete("never"))
    assert.has_error(function() j:delete(nil) end)
    j:close()
  end)
end)
