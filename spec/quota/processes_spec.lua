-- The SQLite stores shared by OS processes, through the Lua API: several
-- lua5.4 processes reserving one pair of keys at once admit exactly the
-- limit; several checking the same webhook ids see each first exactly once;
-- processes killed with SIGKILL at any instant leave whole reservations and
-- a file the next process opens and counts right. Each child is this
-- interpreter running a small script, started together by a go file.
local files = require "spec.support.files"
local quota = require "truv.quota"
local core = require "truv.core"

local CHILD = [=[
local mode, path, go, a, b, limit, n = ...
local quota, dedupe, core = require "truv.quota", require "truv.dedupe", require "truv.core"
io.stdout:setvbuf("line")
limit, n = tonumber(limit), tonumber(n)
local store
if mode == "dedupe" then store = assert(dedupe.sqlite(path))
else store = assert(quota.sqlite(path, { limit = limit, window = 86400 })) end
for _ = 1, 2000 do                      -- wait (bounded) for the go file
  local f = io.open(go)
  if f then f:close() break end
  core.sleep(0.002)
end
local ok, refused, failed = 0, 0, 0
if mode == "dedupe" then
  for i = 1, n do
    local r = store:seen("wh-" .. i, 1700000000, 3600)
    if r then ok = ok + 1; print("first wh-" .. i)
    elseif r == false then refused = refused + 1 else failed = failed + 1 end
  end
else
  local keys = { quota.key(a), quota.key(b) }
  for i = 1, n do
    local t, err = store:reserve(keys, 1700000000 + i / 1000)
    if t then ok = ok + 1; print("ticket " .. t)
    elseif t == false then refused = refused + 1
    else failed = failed + 1; print("error " .. tostring(err)) end
  end
end
print(string.format("done %d %d %d", ok, refused, failed))
]=]

local dir, script

local function child_cmd(args, out)
  local quoted = {}
  for i, v in ipairs(args) do quoted[i] = files.quote(v) end
  return string.format("exec lua5.4 %s %s >%s 2>&1", files.quote(script), table.concat(quoted, " "),
                       files.quote(out))
end

-- Starts the children in the background; returns their pids.
local function start(children)
  local pids = {}
  for i, c in ipairs(children) do
    local p = assert(io.popen("(" .. child_cmd(c.args, c.out) .. ") & echo $!"))
    pids[i] = tonumber(p:read("l"))
    p:close()
  end
  return pids
end

local function alive(pid)
  return files.read("/proc/" .. pid .. "/stat") ~= nil and
         not files.read("/proc/" .. pid .. "/stat"):match("^%d+ %b() Z")
end

-- Waits (bounded) until none of pids runs.
local function wait_all(pids, seconds)
  for _ = 1, seconds * 100 do
    local any = false
    for _, pid in ipairs(pids) do any = any or alive(pid) end
    if not any then return true end
    core.sleep(0.01)
  end
  return false
end

local function lines_of(path, prefix)
  local out = {}
  for line in (files.read(path) or ""):gmatch("[^\n]+") do
    local v = line:match("^" .. prefix .. " (.+)$")
    if v then out[#out + 1] = v end
  end
  return out
end

local function done_of(path)
  local text = files.read(path) or ""
  local ok, refused, failed = text:match("done (%d+) (%d+) (%d+)")
  assert(ok, "a child did not finish:\n" .. text)
  return tonumber(ok), tonumber(refused), tonumber(failed)
end

local function go(name)
  local p = dir .. "/" .. name .. ".go"
  files.write(p, "")
  return p
end

local function db(name)
  return dir .. "/" .. name .. ".db"
end

describe("SQLite stores shared by processes", function()
  lazy_setup(function()
    dir = files.tmpdir("truv-procs")
    script = dir .. "/child.lua"
    files.write(script, CHILD)
  end)

  lazy_teardown(function()
    if dir then os.execute("LD_PRELOAD= rm -rf " .. files.quote(dir)) end
  end)

  it("admit exactly the limit when processes reserve one pair of keys at once", function()
    local PROCS, N, LIMIT = 4, 100, 150
    local path, gofile = db("race"), dir .. "/race.go"
    local children = {}
    for i = 1, PROCS do
      children[i] = { args = { "quota", path, gofile, "tok-a", "tok-b", LIMIT, N },
                      out = dir .. "/race." .. i }
    end
    local pids = start(children)
    go("race")
    assert.is_true(wait_all(pids, 60), "children still running")
    local got, tickets = 0, {}
    for _, c in ipairs(children) do
      local ok, refused, failed = done_of(c.out)
      assert.equal(0, failed, files.read(c.out))
      assert.equal(N, ok + refused)
      got = got + ok
      for _, t in ipairs(lines_of(c.out, "ticket")) do
        assert.is_nil(tickets[t], "ticket " .. t .. " issued twice")
        tickets[t] = true
      end
    end
    assert.equal(LIMIT, got)
    local store = assert(quota.sqlite(path, { limit = LIMIT, window = 86400 }))
    assert.equal(LIMIT, (store:usage(quota.key("tok-a"), 1700000001)))
    assert.equal(LIMIT, (store:usage(quota.key("tok-b"), 1700000001)))
    store:close()
  end)

  it("see each webhook id first exactly once when processes check the same ids", function()
    local PROCS, N = 4, 200
    local path, gofile = db("seen"), dir .. "/seen.go"
    local children = {}
    for i = 1, PROCS do
      children[i] = { args = { "dedupe", path, gofile, "", "", 0, N }, out = dir .. "/seen." .. i }
    end
    local pids = start(children)
    go("seen")
    assert.is_true(wait_all(pids, 60), "children still running")
    local firsts = {}
    for _, c in ipairs(children) do
      local _, _, failed = done_of(c.out)
      assert.equal(0, failed, files.read(c.out))
      for _, id in ipairs(lines_of(c.out, "first")) do firsts[id] = (firsts[id] or 0) + 1 end
    end
    for i = 1, N do assert.equal(1, firsts["wh-" .. i], "wh-" .. i) end
  end)

  it("count right after processes are killed with SIGKILL at any instant", function()
    local ROUNDS, PROCS, N, LIMIT = 6, 3, 150, 1000
    math.randomseed(os.time())
    local path = db("kills")
    local killed, totals = 0, { seen = 0, counted = 0 }
    for round = 1, ROUNDS do
      local gofile = dir .. "/kills" .. round .. ".go"
      local ka, kb = "tok-k-a" .. round, "tok-k-b" .. round
      local children = {}
      for i = 1, PROCS do
        -- the first would run for seconds: it is killed part-way
        children[i] = { args = { "quota", path, gofile, ka, kb, LIMIT, i == 1 and 200000 or N },
                        out = dir .. "/kills." .. round .. "." .. i }
      end
      local pids = start(children)
      go("kills" .. round)
      -- it dies at a random instant of its loop, most likely inside a transaction
      core.sleep(0.005 + math.random() * 0.04)
      os.execute("LD_PRELOAD= kill -KILL " .. pids[1] .. " 2>/dev/null")
      assert.is_true(wait_all(pids, 60), "children still running")
      local seen = 0
      for i, c in ipairs(children) do
        -- a killed child's last ticket may be committed and never printed
        seen = seen + #lines_of(c.out, "ticket")
        if i == 1 and not (files.read(c.out) or ""):find("done ", 1, true) then
          killed = killed + 1
        else
          local _, _, failed = done_of(c.out)
          assert.equal(0, failed, files.read(c.out))
        end
      end
      -- the next process opens the file and counts whole reservations, each once
      local store = assert(quota.sqlite(path, { limit = LIMIT, window = 86400 }))
      local a = store:usage(quota.key(ka), 1700000001)
      local b = store:usage(quota.key(kb), 1700000001)
      assert.equal(a, b)
      assert.is_true(a <= LIMIT, a .. " counted against a limit of " .. LIMIT)
      assert.is_true(a >= seen and a <= seen + 1, a .. " counted for " .. seen .. " tickets seen")
      assert.is_string(store:reserve({ quota.key("after-kills") }, 1700000001 + round))
      store:close()
      totals.seen, totals.counted = totals.seen + seen, totals.counted + a
    end
    io.stderr:write(string.format("%d rounds, %d killed, %d tickets seen, %d counted\n", ROUNDS,
                                  killed, totals.seen, totals.counted))
    assert.equal(ROUNDS, killed)
  end)
end)
